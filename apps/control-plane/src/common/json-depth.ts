/**
 * True when a JSON text nests arrays and objects deeper than `max`. One pass over the characters,
 * skipping strings, far cheaper than parsing: deeply nested input is what makes JSON.parse (and
 * everything that walks its result) slow, so it is refused before.
 */
export function jsonTooDeep(text: string | Buffer, max: number): boolean {
  const s = typeof text === 'string' ? text : text.toString('latin1');
  let depth = 0;
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}
