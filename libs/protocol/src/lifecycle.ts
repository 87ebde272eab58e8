import { EXECUTION_STATUSES, type ExecutionStatus } from './constants.js';

/**
 * The execution lifecycle as data: which status may follow which. The control plane builds the
 * guard of every status change from this table (`WHERE status = ANY(allowedFrom(to))`), so a
 * transition that is not listed here cannot happen, and terminal statuses never change again.
 *
 * - `queued`: waiting for the agent (or for the agent to come online).
 * - `dispatched`: the start was sent; the agent may have accepted it into its own queue.
 * - `running`: the process was spawned (protocol v2 reports it; a v1 agent's accept counts).
 * - a run the control plane ends itself (`lost`, `timed_out`, `cancelled`) may end from
 *   `dispatched` too, as may a fast run whose finished report arrives before the start's answer.
 */
export const TRANSITIONS = {
  queued: ['dispatched', 'cancelled', 'undeliverable', 'failed'],
  dispatched: ['running', 'queued', 'succeeded', 'failed', 'timed_out', 'cancelled', 'lost'],
  running: ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost'],
  succeeded: [],
  failed: [],
  timed_out: [],
  cancelled: [],
  lost: [],
  undeliverable: [],
} as const satisfies Record<ExecutionStatus, readonly ExecutionStatus[]>;

export function canTransition(from: ExecutionStatus, to: ExecutionStatus): boolean {
  return (TRANSITIONS[from] as readonly ExecutionStatus[]).includes(to);
}

const FROM = new Map<ExecutionStatus, ExecutionStatus[]>(
  EXECUTION_STATUSES.map((to) => [to, EXECUTION_STATUSES.filter((from) => canTransition(from, to))]),
);

/** The statuses an execution may be in for `to` to follow. */
export function allowedFrom(to: ExecutionStatus): readonly ExecutionStatus[] {
  return FROM.get(to)!;
}

/** Statuses a run is in while its agent may hold it (dispatched or running). */
export const ACTIVE_STATUSES = ['dispatched', 'running'] as const satisfies readonly ExecutionStatus[];
