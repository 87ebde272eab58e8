/**
 * Bounds the work one agent's reports can cause. Every report may cost a database transaction,
 * and an agent's token only proves which server it is, not that it behaves: without a bound, an
 * agent sending reports without waiting for the acks (thousands a second, forged ids, garbage)
 * would take every pooled connection and starve the triggers and the other agents.
 *
 * Per server (one live connection per server):
 * - at most `concurrency` reports are handled at once, the others wait in arrival order;
 * - at most `maxQueued` may wait; past that the agent is over any honest window: cut off;
 * - refused reports (malformed, another server's or unknown execution) spend a budget of
 *   `refusalBurst` refilled at `refusalsPerSecond`; an empty budget cuts the agent off. Refused
 *   items inside one message (a hello's unknown executions) spend one each.
 *   An honest agent is refused at most a few times per execution (it gives up on it).
 * Cutting off drops what still waits: it is neither handled nor answered.
 */
export interface ReportThrottleOptions {
  concurrency: number;
  maxQueued: number;
  refusalBurst: number;
  refusalsPerSecond: number;
}

export const REPORT_THROTTLE_DEFAULTS: ReportThrottleOptions = { concurrency: 8, maxQueued: 10_000, refusalBurst: 50, refusalsPerSecond: 5 };

/** Why an agent was cut off. */
export type CutOff = 'too many reports waiting' | 'too many refused reports';

interface Lane {
  active: number;
  waiting: (() => void)[];
  tokens: number;
  refilledAt: number;
  /** Bumped when the lane is cut off: work queued before belongs to the dropped connection. */
  epoch: number;
}

export class ReportThrottle {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly onCutOff: (serverId: string, why: CutOff) => void,
    private readonly opts: ReportThrottleOptions = REPORT_THROTTLE_DEFAULTS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Runs `handle` when the server's lane has room; `refusals` says whether its result is a
   * refusal, or how many items of it were refused. Undefined when the agent was cut off before
   * its turn (nothing to answer).
   */
  async run<T>(serverId: string, handle: () => Promise<T>, refusals: (result: T) => boolean | number): Promise<T | undefined> {
    const lane = this.lane(serverId);
    const epoch = lane.epoch;
    if (lane.active >= this.opts.concurrency) {
      if (lane.waiting.length >= this.opts.maxQueued) {
        this.cutOff(serverId, lane, 'too many reports waiting');
        return undefined;
      }
      await new Promise<void>((resolve) => lane.waiting.push(resolve));
      if (lane.epoch !== epoch) return undefined;
    }
    lane.active++;
    try {
      const result = await handle();
      const refused = Number(refusals(result));
      if (refused > 0 && !this.spend(lane, refused)) this.cutOff(serverId, lane, 'too many refused reports');
      return result;
    } finally {
      lane.active--;
      this.next(serverId, lane);
    }
  }

  /** How many servers have state here (for tests: idle lanes are forgotten). */
  get size(): number {
    return this.lanes.size;
  }

  private lane(serverId: string): Lane {
    let lane = this.lanes.get(serverId);
    if (!lane) {
      lane = { active: 0, waiting: [], tokens: this.opts.refusalBurst, refilledAt: this.now(), epoch: 0 };
      this.lanes.set(serverId, lane);
    }
    return lane;
  }

  private spend(lane: Lane, n: number): boolean {
    this.refill(lane);
    if (lane.tokens < n) {
      lane.tokens = 0;
      return false;
    }
    lane.tokens -= n;
    return true;
  }

  private refill(lane: Lane): void {
    const now = this.now();
    lane.tokens = Math.min(this.opts.refusalBurst, lane.tokens + ((now - lane.refilledAt) / 1000) * this.opts.refusalsPerSecond);
    lane.refilledAt = now;
  }

  private cutOff(serverId: string, lane: Lane, why: CutOff): void {
    lane.epoch++;
    // Release the waiters: they see the new epoch and return without handling anything.
    for (const wake of lane.waiting.splice(0)) wake();
    this.onCutOff(serverId, why);
  }

  private next(serverId: string, lane: Lane): void {
    const wake = lane.waiting.shift();
    if (wake) return wake();
    if (lane.active > 0) return;
    this.refill(lane);
    // Idle with a full budget: nothing worth remembering about this server.
    if (lane.tokens >= this.opts.refusalBurst) this.lanes.delete(serverId);
  }
}
