import { setTimeout as sleep } from 'node:timers/promises';

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, { signal }).catch(() => undefined),
};

/**
 * Runs statements at most `duty` of the time: after one that took t ms it waits t × (1 − duty) /
 * duty (at least `minPauseMs`). A statement slowed by other work (the trigger's statements on the
 * same CPUs, WAL flushes) makes the next pause longer by the same factor, so a background job
 * yields the most while the database is busiest and still runs at a known share of its speed.
 */
export class DutyCycle {
  constructor(
    private readonly duty: number,
    private readonly minPauseMs: number,
    private readonly signal: AbortSignal,
    private readonly clock: Clock = realClock,
  ) {}

  /** The pause after a statement that took `tookMs`. */
  pauseAfter(tookMs: number): number {
    return Math.max(this.minPauseMs, (tookMs * (1 - this.duty)) / this.duty);
  }

  async run<T>(statement: () => Promise<T>): Promise<T> {
    const started = this.clock.now();
    const result = await statement();
    if (!this.signal.aborted) await this.clock.sleep(this.pauseAfter(this.clock.now() - started), this.signal);
    return result;
  }
}
