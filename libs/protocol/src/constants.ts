/**
 * The protocol version this build speaks. Bump on any incompatible change to events or payloads.
 * 2 added `execution.spawned`: an accepted start waits in the agent's queue, and the run is
 * `running` once its process was spawned.
 * 3 moved the agent's token to `Authorization: Bearer` on the WebSocket upgrade (checked before
 * any packet is read) and bounded the hello's lists.
 * 4 lets a viewer announce its version on `/dashboard`; from 4 a viewer gets `execution.output`'s
 * bytes as base64 text, one WebSocket frame per message (a binary attachment is a frame of its
 * own) and encoded once for every viewer of a broadcast. Agents of 4 write a start's `payload`
 * (the request a webhook passes to its script) to the script's request file; a run that is to get
 * one is never sent to an older agent (see PAYLOAD_SINCE_PROTOCOL).
 */
export const PROTOCOL_VERSION = 4;
/**
 * Versions the control plane accepts in the CONNECT packet (a v1 agent never sends
 * `execution.spawned`). Every client must send its credential on the upgrade, whatever it says here.
 */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1, 2, 3, 4];
/**
 * The largest chunk a text viewer gets as base64: a larger one goes as a binary attachment to every
 * viewer. Beside a big chunk a second frame costs nothing, while base64 adds a third to the bytes
 * and its encoding cost the live output path about a third of its rate with one viewer.
 */
export const VIEWER_TEXT_OUTPUT_MAX_BYTES = 16 * 1024;
/** Viewers announcing this version or later get output bytes as base64 text (chunks up to VIEWER_TEXT_OUTPUT_MAX_BYTES); earlier ones (or none) as a binary attachment. */
export const VIEWER_TEXT_OUTPUT_SINCE = 4;

/** Largest seq (and lastSeq, nextSeq, fromSeq, ackedSeq): output is stored under a PostgreSQL integer. */
export const MAX_SEQ = 2_147_483_647;

export const AGENT_NAMESPACE = '/agent';
export const DASHBOARD_NAMESPACE = '/dashboard';
/** The socket.io path (engine) of agents: `/agent` lives here. */
export const AGENT_IO_PATH = '/socket.io/';
/**
 * The socket.io path (engine) of viewers: `/dashboard` lives here, apart from the agents, because
 * the largest message an engine accepts is per engine and viewers only send tiny ones.
 */
export const DASHBOARD_IO_PATH = '/dashboard-io/';
/** Largest socket.io message a viewer may send (subscribe and unsubscribe are a few hundred bytes). */
export const MAX_VIEWER_MESSAGE_BYTES = 16 * 1024;
/** Deepest nesting of arrays and objects in a JSON text either side parses (the protocol needs 4). */
export const MAX_JSON_DEPTH = 32;
/**
 * Most executions an agent's hello may list as running, and as finished: the control plane hands
 * an agent every run queued for its server (at most DEVPILOT_MAX_QUEUED_PER_SERVER, 10,000 by
 * default), and the agent holds them in its own queue.
 */
export const MAX_HELLO_ITEMS = 10_000;

/** Largest single output chunk an agent may send, and the largest batch. */
export const MAX_CHUNK_BYTES = 256 * 1024;
export const MAX_CHUNKS_PER_BATCH = 256;
/** Largest socket.io message either side accepts (a full batch plus framing). */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/**
 * Largest request body a start command carries for the script (`payload.body`): the largest
 * trigger body limit the control plane can be configured with (DEVPILOT_BODY_LIMIT_BYTES).
 */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;
/**
 * The first agent protocol whose agents write a start's `payload` to the script's request file
 * (they announce it in the handshake); an older agent would drop the field and run the script
 * without the request, so a run that is to get one is never sent to it.
 */
export const PAYLOAD_SINCE_PROTOCOL = 4;
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
