import { MAX_MESSAGE_BYTES } from '@app/protocol';

/**
 * What agents' messages received but not yet answered may hold in memory: per connection, and for
 * the whole process. Above a high mark a connection stops being read (TCP pushes back on the
 * agent) until the handlers caught up below the low mark. A well-behaved agent keeps a few MiB
 * unacked; nothing stops a buggy or hostile one from sending without waiting for acks.
 */
export interface InflightLimits {
  connectionHigh: number;
  connectionLow: number;
  processHigh: number;
  processLow: number;
}

export const INFLIGHT_LIMITS: InflightLimits = {
  connectionHigh: 16 * 1024 * 1024,
  connectionLow: 4 * 1024 * 1024,
  processHigh: 128 * 1024 * 1024,
  processLow: 64 * 1024 * 1024,
};

/** Stops and restarts reading one connection. */
export interface Reader {
  pause(): void;
  resume(): void;
}

/** Past this many values walked, a message counts as the largest the engine accepts. */
const MAX_WALK = 100_000;

/**
 * What a decoded message holds, roughly: string lengths, buffer sizes, a few bytes per other value.
 * Bounded work: a message with more values than MAX_WALK counts as MAX_MESSAGE_BYTES.
 */
export function estimateBytes(value: unknown): number {
  let bytes = 0;
  let walked = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    if (++walked > MAX_WALK) return Math.max(bytes, MAX_MESSAGE_BYTES);
    const v = stack.pop();
    if (typeof v === 'string') bytes += v.length + 16;
    else if (v instanceof Uint8Array || v instanceof ArrayBuffer) bytes += v.byteLength + 16;
    else if (Array.isArray(v)) {
      bytes += 16 + v.length * 8;
      for (const item of v) stack.push(item);
    } else if (v !== null && typeof v === 'object') {
      bytes += 16;
      for (const [k, item] of Object.entries(v)) {
        bytes += k.length + 8;
        stack.push(item);
      }
    } else bytes += 8;
  }
  return bytes;
}

/** The process-wide count, shared by every connection's gate. */
export class InflightBudget {
  bytes = 0;
  private readonly paused = new Set<InflightGate>();

  constructor(readonly limits: InflightLimits = INFLIGHT_LIMITS) {}

  gate(reader: () => Reader | undefined): InflightGate {
    return new InflightGate(this, reader);
  }

  /** Called by a gate that paused; `settle` resumes it when both counts allow. */
  hold(gate: InflightGate): void {
    this.paused.add(gate);
  }

  forget(gate: InflightGate): void {
    this.paused.delete(gate);
  }

  /** After bytes were released: every paused connection that may read again does. */
  settle(): void {
    if (this.bytes >= this.limits.processLow) return;
    for (const gate of [...this.paused]) gate.resumeIfBelow();
  }
}

/** One connection's count. `enter` when a message arrives, `leave` with the same number once it is answered. */
export class InflightGate {
  bytes = 0;
  private paused = false;

  constructor(
    private readonly budget: InflightBudget,
    private readonly reader: () => Reader | undefined,
  ) {}

  get isPaused(): boolean {
    return this.paused;
  }

  enter(payload: unknown): number {
    const n = estimateBytes(payload);
    this.bytes += n;
    this.budget.bytes += n;
    const { connectionHigh, processHigh } = this.budget.limits;
    if (!this.paused && (this.bytes > connectionHigh || this.budget.bytes > processHigh)) {
      this.paused = true;
      this.budget.hold(this);
      this.reader()?.pause();
    }
    return n;
  }

  leave(n: number): void {
    this.bytes -= n;
    this.budget.bytes -= n;
    this.resumeIfBelow();
    this.budget.settle();
  }

  resumeIfBelow(): void {
    if (!this.paused || this.bytes >= this.budget.limits.connectionLow || this.budget.bytes >= this.budget.limits.processLow) return;
    this.paused = false;
    this.budget.forget(this);
    this.reader()?.resume();
  }

  /** The connection closed: it no longer waits for a resume (its messages still `leave` as they end). */
  close(): void {
    this.budget.forget(this);
  }
}
