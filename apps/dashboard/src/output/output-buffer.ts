import { AnsiUp } from 'ansi_up';
import type { OutputStream } from '@app/protocol/constants.js';

export interface OutputLine {
  stream: OutputStream;
  /** Escaped HTML with ANSI colours as spans (the 16 base colours as `ansi-*` classes). */
  html: string;
}

interface PerStream {
  /** Streaming decoder: a multi-byte UTF-8 character split across chunks comes out whole. */
  decoder: TextDecoder;
  /** Colour state carries across chunks and lines, as in a terminal. */
  ansi: AnsiUp;
  /** The stream's unfinished last line (already in `lines`), if any. */
  open: OutputLine | null;
  /** A chunk ended in `\r`: the next text overwrites the line, unless a `\n` comes first. */
  pendingCR: boolean;
}

function perStream(): PerStream {
  const ansi = new AnsiUp();
  ansi.use_classes = true;
  return { decoder: new TextDecoder('utf-8'), ansi, open: null, pendingCR: false };
}

/**
 * The lines of one execution's output, built from seq-numbered chunks in seq order.
 * Chunks already held are dropped; chunks past a gap wait until the gap is filled, so each
 * stream's bytes are decoded in the order they were written.
 */
export class OutputBuffer {
  readonly lines: OutputLine[] = [];
  private contiguous = -1;
  private readonly held = new Map<number, { stream: OutputStream; data: Uint8Array }>();
  private readonly streams: Record<OutputStream, PerStream> = { stdout: perStream(), stderr: perStream() };
  bytes = 0;

  /** The last seq held with no gap before it: what a resubscribe asks to continue after. */
  get lastSeq(): number {
    return this.contiguous;
  }

  /** Adds one chunk; returns whether the lines changed. */
  push(seq: number, stream: OutputStream, data: Uint8Array): boolean {
    if (seq <= this.contiguous || this.held.has(seq)) return false;
    if (seq !== this.contiguous + 1) {
      this.held.set(seq, { stream, data });
      return false;
    }
    this.apply(stream, data);
    this.contiguous = seq;
    for (let next = this.held.get(seq + 1); next; next = this.held.get(this.contiguous + 1)) {
      this.held.delete(this.contiguous + 1);
      this.apply(next.stream, next.data);
      this.contiguous++;
    }
    return true;
  }

  private apply(stream: OutputStream, data: Uint8Array): void {
    this.bytes += data.byteLength;
    const text = this.streams[stream].decoder.decode(data, { stream: true });
    if (text) this.appendText(stream, text);
  }

  private appendText(stream: OutputStream, text: string): void {
    const s = this.streams[stream];
    const parts = text.split('\n');
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) {
        // A newline ends the stream's open line (or is an empty line of its own).
        if (!s.open) this.lines.push({ stream, html: '' });
        s.open = null;
        s.pendingCR = false;
      }
      const part = parts[i]!;
      if (part) this.appendToOpen(s, stream, part);
    }
  }

  private appendToOpen(s: PerStream, stream: OutputStream, text: string): void {
    let part = text;
    let line = s.open;
    let overwrite = s.pendingCR;
    s.pendingCR = part.endsWith('\r');
    if (s.pendingCR) part = part.slice(0, -1);
    const cr = part.lastIndexOf('\r');
    if (cr >= 0) {
      part = part.slice(cr + 1);
      overwrite = true;
    }
    if (!line) {
      line = { stream, html: '' };
      this.lines.push(line);
      s.open = line;
    } else if (overwrite) line.html = '';
    // The converter keeps an unfinished escape sequence for the next call, so chunk edges are safe.
    line.html += s.ansi.ansi_to_html(part);
  }
}

/**
 * The bytes of an `execution.output`: base64 text (what the feed asks for, protocol 4), or binary
 * (socket.io hands it over as an ArrayBuffer in a browser; the other shapes bytes can take too).
 * Null for anything else, including text that is not base64.
 */
export function toBytes(data: unknown): Uint8Array | null {
  if (typeof data === 'string') return fromBase64(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data && typeof data === 'object' && Array.isArray((data as { data?: unknown }).data))
    return Uint8Array.from((data as { data: number[] }).data);
  return null;
}

function fromBase64(text: string): Uint8Array | null {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    return null;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
