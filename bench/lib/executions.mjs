// Reading execution state straight from the scenario's database (cheaper than the API under load).
import { waitFor } from './util.mjs';

export const TERMINAL = ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'undeliverable'];

export async function executionCounts(db) {
  const [r] = await db.query(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE status = ANY($1))::int AS done,
            count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded
       FROM execution`,
    [TERMINAL],
  );
  return r;
}

/** Waits until every execution is terminal (bounded); returns the counts and whether it drained. */
export async function drain(db, timeoutMs, everyMs = 100) {
  try {
    const c = await waitFor('executions to finish', async () => {
      const c = await executionCounts(db);
      return c.done === c.total ? c : false;
    }, timeoutMs, everyMs);
    return { ...c, drained: true };
  } catch {
    return { ...(await executionCounts(db)), drained: false };
  }
}

/** How many of `ids` have an execution row. */
export async function countExisting(db, ids) {
  let found = 0;
  for (let i = 0; i < ids.length; i += 5000) {
    const [r] = await db.query('SELECT count(*)::int AS n FROM execution WHERE id = ANY($1::uuid[])', [ids.slice(i, i + 5000)]);
    found += r.n;
  }
  return found;
}
