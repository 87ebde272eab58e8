/**
 * Work items under one key run one group at a time, in arrival order; what arrives while a group
 * runs waits and goes into the next group together (as far as `canJoin` allows).
 *
 * A group commit: a lone item starts at once, and under load the items that queued up behind a
 * statement cost one statement together instead of one each. Used for output batches of one
 * execution (an agent keeps a window of batches in flight; storing them concurrently committed
 * them in either order, and a live viewer then saw a gap and went back to the database; one
 * statement at a time keeps commits, and so live events, in seq order), for the agents' start
 * acks (`dispatched` -> `running`), and in the agent for removing runs' folders (one process per
 * group instead of one per run).
 */
export class SerialCoalescer<T, R> {
  private readonly lanes = new Map<string, Entry<T, R>[]>();

  constructor(
    /** Handles one group; answers one result per item, in order. */
    private readonly handle: (key: string, items: T[]) => Promise<R[]>,
    /** Whether `next` may join the group being formed. */
    private readonly canJoin: (group: readonly T[], next: T) => boolean,
  ) {}

  run(key: string, item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const entry = { item, resolve, reject };
      const waiting = this.lanes.get(key);
      if (waiting) return void waiting.push(entry);
      const lane = [entry];
      this.lanes.set(key, lane);
      void this.drain(key, lane);
    });
  }

  /** Keys with work running or waiting (for tests: idle keys are forgotten). */
  get size(): number {
    return this.lanes.size;
  }

  private async drain(key: string, lane: Entry<T, R>[]): Promise<void> {
    while (lane.length > 0) {
      const group = [lane.shift()!];
      const items = [group[0]!.item];
      try {
        while (lane.length > 0 && this.canJoin(items, lane[0]!.item)) {
          const next = lane.shift()!;
          group.push(next);
          items.push(next.item);
        }
        const results = await this.handle(key, items);
        group.forEach((e, i) => e.resolve(results[i]!));
      } catch (err) {
        for (const e of group) e.reject(err);
      }
    }
    this.lanes.delete(key);
  }
}

interface Entry<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}
