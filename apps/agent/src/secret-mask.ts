/** Values shorter than this are not masked: they would match ordinary output everywhere. */
export const MIN_MASKED_BYTES = 6;
const MASK = Buffer.from('***');

/**
 * Replaces every occurrence of the run's secret values in one output stream by `***` before the
 * bytes leave the agent, also when a value is split across writes or chunks: the bytes at the end
 * that could be the start of a value are held back until the next write (or the end of the
 * stream) says whether they are. Output is otherwise passed on byte for byte.
 */
export class SecretMask {
  private readonly values: Buffer[];
  private pending: Buffer = Buffer.alloc(0);

  constructor(values: string[]) {
    // Longest first, so a value that contains another is masked whole.
    this.values = [...new Set(values)]
      .map((v) => Buffer.from(v, 'utf8'))
      .filter((v) => v.length >= MIN_MASKED_BYTES)
      .sort((a, b) => b.length - a.length);
  }

  get active(): boolean {
    return this.values.length > 0;
  }

  /** The bytes that can go out now. */
  write(data: Buffer): Buffer {
    if (!this.active) return data;
    const buf = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    const { out, rest } = this.mask(buf);
    const hold = this.partialAtEnd(buf, rest);
    this.pending = Buffer.from(buf.subarray(buf.length - hold));
    out.push(buf.subarray(rest, buf.length - hold));
    return Buffer.concat(out);
  }

  /** The end of the stream: whatever was held back, masked. */
  end(): Buffer {
    if (!this.active || this.pending.length === 0) return Buffer.alloc(0);
    const buf = this.pending;
    this.pending = Buffer.alloc(0);
    const { out, rest } = this.mask(buf);
    out.push(buf.subarray(rest));
    return Buffer.concat(out);
  }

  /** The masked pieces of `buf` up to the end of its last whole value, and where the rest starts. */
  private mask(buf: Buffer): { out: Buffer[]; rest: number } {
    const out: Buffer[] = [];
    let from = 0;
    for (;;) {
      let at = -1;
      let len = 0;
      for (const v of this.values) {
        const i = buf.indexOf(v, from);
        if (i !== -1 && (at === -1 || i < at)) {
          at = i;
          len = v.length;
        }
      }
      if (at === -1) return { out, rest: from };
      out.push(buf.subarray(from, at), MASK);
      from = at + len;
    }
  }

  /** How many bytes at the end of `buf` (after `start`) are a proper prefix of some value. */
  private partialAtEnd(buf: Buffer, start: number): number {
    let hold = 0;
    for (const v of this.values) {
      const longest = Math.min(v.length - 1, buf.length - start);
      for (let k = longest; k > hold; k--) {
        if (buf[buf.length - k] === v[0] && buf.subarray(buf.length - k).equals(v.subarray(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}
