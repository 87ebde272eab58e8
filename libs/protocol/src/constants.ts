/**
 * The protocol version this build speaks. Bump on any incompatible change to events or payloads.
 * 2 added `execution.spawned`: an accepted start waits in the agent's queue, and the run is
 * `running` once its process was spawned.
 */
export const PROTOCOL_VERSION = 2;
/** Versions the control plane accepts from agents (a v1 agent never sends `execution.spawned`). */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1, 2];

/** Largest seq (and lastSeq, nextSeq, fromSeq, ackedSeq): output is stored under a PostgreSQL integer. */
export const MAX_SEQ = 2_147_483_647;

export const AGENT_NAMESPACE = '/agent';
export const DASHBOARD_NAMESPACE = '/dashboard';

/** Largest single output chunk an agent may send, and the largest batch. */
export const MAX_CHUNK_BYTES = 256 * 1024;
export const MAX_CHUNKS_PER_BATCH = 256;
/** Largest socket.io message either side accepts (a full batch plus framing). */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** Largest script content, in UTF-16 code units as JavaScript counts them. */
export const MAX_SCRIPT_CONTENT = 1024 * 1024;

/**
 * A user a script may run as (`runAs`): a POSIX-style login name of at most 32 characters, as
 * `useradd` accepts it (a trailing `$` is allowed for machine accounts).
 */
export const RUN_AS_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;
export const MAX_RUN_AS_LENGTH = 32;

export const INTERPRETERS = ['bash', 'sh', 'python3', 'node'] as const;
export type Interpreter = (typeof INTERPRETERS)[number];

export const EXECUTION_STATUSES = [
  'queued',
  'dispatched',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'lost',
  'undeliverable',
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];
export const TERMINAL_STATUSES: readonly ExecutionStatus[] = [
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'lost',
  'undeliverable',
];
export function isTerminal(status: ExecutionStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export const TRIGGERS = ['webhook', 'manual', 'api'] as const;
export type Trigger = (typeof TRIGGERS)[number];

export const STREAMS = ['stdout', 'stderr'] as const;
export type OutputStream = (typeof STREAMS)[number];
