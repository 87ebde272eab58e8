import { z } from 'zod';
import {
  EXECUTION_STATUSES,
  INTERPRETERS,
  MAX_CHUNK_BYTES,
  MAX_CHUNKS_PER_BATCH,
  MAX_HELLO_ITEMS,
  MAX_PAYLOAD_BYTES,
  MAX_SCRIPT_CONTENT,
  MAX_RUN_AS_LENGTH,
  MAX_SEQ,
  RUN_AS_PATTERN,
  STREAMS,
  SUPPORTED_PROTOCOL_VERSIONS,
  TRIGGERS,
  VIEWER_TEXT_OUTPUT_MAX_BYTES,
  VIEWER_TEXT_OUTPUT_SINCE,
} from './constants.js';
import { ErrorReply, protocolError, ProtocolErrorCode } from './errors.js';

const executionId = z.uuid();
/** A chunk's number: from 0 per execution, no gaps; bounded by what is stored (a PostgreSQL integer). */
const seq = z.number().int().min(0).max(MAX_SEQ);
/** A seq, or -1 for "none yet". */
const seqOrNone = z.number().int().min(-1).max(MAX_SEQ);
/** Bytes as they cross socket.io: a Buffer in Node, an ArrayBuffer or Uint8Array in a browser. */
export const Bytes = z
  .union([z.instanceof(Uint8Array), z.instanceof(ArrayBuffer)])
  .transform((b): Uint8Array => (b instanceof Uint8Array ? b : new Uint8Array(b)))
  .refine((b) => b.byteLength <= MAX_CHUNK_BYTES, `chunk larger than ${MAX_CHUNK_BYTES} bytes`)
  .meta({
    type: 'string',
    format: 'binary',
    description: `Bytes: a socket.io binary attachment (Buffer, ArrayBuffer or Uint8Array), at most ${MAX_CHUNK_BYTES} bytes.`,
  });

/** The request a webhook call carried, for a webhook that passes it to its script. */
export const RunPayload = z
  .object({
    /** The body exactly as received (a binary attachment). */
    body: z
      .union([z.instanceof(Uint8Array), z.instanceof(ArrayBuffer)])
      .transform((b): Uint8Array => (b instanceof Uint8Array ? b : new Uint8Array(b)))
      .refine((b) => b.byteLength <= MAX_PAYLOAD_BYTES, `payload larger than ${MAX_PAYLOAD_BYTES} bytes`)
      .meta({ type: 'string', format: 'binary', description: `The raw request body: a socket.io binary attachment, at most ${MAX_PAYLOAD_BYTES} bytes.` }),
    /** X-GitHub-Event or X-Gitlab-Event; empty when the sender names none. */
    event: z.string().max(256),
    /** The sender's delivery id (as remembered for duplicates); empty when there is none. */
    deliveryId: z.string().max(255),
    contentType: z.string().max(1024),
  })
  .meta({ id: 'RunPayload' });
export type RunPayload = z.infer<typeof RunPayload>;

/** A user name a script may run as. */
export const RunAsUser = z.string().min(1).max(MAX_RUN_AS_LENGTH).regex(RUN_AS_PATTERN, 'not a valid user name');

/** Handshake `auth` an agent sends when it connects to `/agent`. */
export const AgentHandshake = z
  .object({
    /** Protocol 1 and 2 sent the token here; from 3 it goes in `Authorization: Bearer` on the upgrade, which is what is checked. */
    token: z.string().min(1).max(512).optional(),
    protocolVersion: z.number().int(),
    agentVersion: z.string().max(64).default('unknown'),
    hostname: z.string().max(255).default(''),
    platform: z.string().max(64).default(''),
    /** The user scripts run as when they name no `runAs` (the agent's own user when it cannot switch users). */
    runsScriptsAs: z.string().max(MAX_RUN_AS_LENGTH).optional(),
    /** Whether the agent can run scripts as another user than its own (root, or CAP_SETUID+CAP_SETGID+CAP_KILL). */
    switchesUsers: z.boolean().optional(),
    /** The users a script's `runAs` may name on this agent (`--allow-run-as`). */
    allowRunAs: z.array(z.string().max(MAX_RUN_AS_LENGTH)).max(64).optional(),
  })
  .meta({ id: 'AgentHandshake' });
export type AgentHandshake = z.infer<typeof AgentHandshake>;

/**
 * Handshake `auth` of a viewer on `/dashboard`: its credential (API key or ticket) comes with the
 * upgrade request; `protocolVersion` says how it wants output bytes (base64 text from 4, binary
 * before, and when it is left out).
 */
export const ViewerHandshake = z
  .object({
    protocolVersion: z
      .number()
      .int()
      .optional()
      .meta({ description: `The viewer's protocol version, one of ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}. From ${VIEWER_TEXT_OUTPUT_SINCE}, \`execution.output\` carries its bytes as base64 text (chunks up to ${VIEWER_TEXT_OUTPUT_MAX_BYTES} bytes; larger ones, and every chunk without it, as a binary attachment).` }),
  })
  .meta({ id: 'ViewerHandshake' });
export type ViewerHandshake = z.infer<typeof ViewerHandshake>;

/** cp -> agent: run this script (now, or when the agent has a free slot). */
export const StartExecution = z.object({
  executionId,
  interpreter: z.enum(INTERPRETERS),
  content: z.string().max(MAX_SCRIPT_CONTENT),
  env: z.record(z.string(), z.string()),
  /** Names in `env` whose values (script secrets) the agent replaces by `***` in the output. */
  maskEnv: z.array(z.string().max(64)).max(1000).optional(),
  timeoutMs: z.number().int().min(1).max(3_600_000),
  maxOutputBytes: z.number().int().min(0),
  /**
   * The user the script asks to run as; an agent that does not allow it refuses the start
   * (`RUN_AS_NOT_ALLOWED`). Without it the agent's default script user.
   */
  runAs: RunAsUser.optional(),
  /**
   * The webhook's request, when the webhook passes it to its script: the agent writes the body to
   * a 0600 file for the run (DEVPILOT_PAYLOAD_FILE, removed after it) and sets DEVPILOT_EVENT,
   * DEVPILOT_DELIVERY_ID and DEVPILOT_CONTENT_TYPE. Never put in the script's text. Sent only to
   * agents of protocol 4 or later.
   */
  payload: RunPayload.optional(),
});
export type StartExecution = z.infer<typeof StartExecution>;

/**
 * Accepted (queued or spawned on the agent; a repeated start of the same id is accepted and never
 * run twice), refused with a reason (the run fails with it), or a malformed start.
 */
export const StartReply = z.union([
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), reason: z.string().max(2000), code: ProtocolErrorCode.optional() }),
  ErrorReply,
]);
export type StartReply = z.infer<typeof StartReply>;

export const OutputChunk = z.object({ seq, stream: z.enum(STREAMS), data: Bytes });
export type OutputChunk = z.infer<typeof OutputChunk>;

/** agent -> cp: consecutive chunks of one execution, in seq order. */
export const OutputBatch = z.object({
  executionId,
  chunks: z.array(OutputChunk).min(1).max(MAX_CHUNKS_PER_BATCH),
});
export type OutputBatch = z.infer<typeof OutputBatch>;

/** Ack of an output batch: every chunk of the batch, up to `ackedSeq`, is durably stored. */
export const OutputAck = z.union([z.object({ ackedSeq: seq }), ErrorReply]);
export type OutputAck = z.infer<typeof OutputAck>;

/** agent -> cp: the process ended and every chunk up to `lastSeq` was acked. */
export const ExecutionFinished = z.object({
  executionId,
  /** A process's exit status: 0-255 (null when a signal ended it). */
  exitCode: z.number().int().min(0).max(255).nullable(),
  /** A signal's name, e.g. SIGTERM. */
  signal: z
    .string()
    .regex(/^SIG[A-Z0-9+-]{2,12}$/, 'a signal name such as SIGTERM')
    .nullable(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
  /** -1 when the script wrote nothing. */
  lastSeq: seqOrNone,
  outputBytes: z.number().int().min(0),
  truncated: z.boolean(),
  /** Why the script could not be started (missing interpreter, ...), if it could not: text without control characters but newlines and tabs. */
  error: z
    .string()
    .max(2000)
     
    .regex(/^[^\u0000-\u0008\u000b-\u001f\u007f]*$/, 'no control characters')
    .nullable()
    .default(null),
});
export type ExecutionFinished = z.infer<typeof ExecutionFinished>;

/** A report taken: `{ok: true}`, or refused. */
export const OkReply = z.union([z.object({ ok: z.literal(true) }), ErrorReply]);
export type OkReply = z.infer<typeof OkReply>;
export const FinishedReply = OkReply;
export type FinishedReply = OkReply;

/** agent -> cp (protocol 2): the script's process was spawned; the execution is `running` from now. */
export const ExecutionSpawned = z.object({ executionId });
export type ExecutionSpawned = z.infer<typeof ExecutionSpawned>;
export const SpawnedReply = OkReply;
export type SpawnedReply = OkReply;

/** agent -> cp, first message after every (re)connect. */
export const AgentHello = z.object({
  /** Every execution the agent holds and has not reported finished: waiting for a slot or running. */
  running: z.array(z.object({ executionId, nextSeq: seq })).max(MAX_HELLO_ITEMS),
  finished: z.array(ExecutionFinished).max(MAX_HELLO_ITEMS),
});
export type AgentHello = z.infer<typeof AgentHello>;

/** The cp asks the agent to resend output it has not stored, per execution, from `fromSeq`. */
export const HelloReply = z.union([z.object({ resend: z.array(z.object({ executionId, fromSeq: seq })) }), ErrorReply]);
export type HelloReply = z.infer<typeof HelloReply>;

export const CancelExecution = z.object({ executionId });
export type CancelExecution = z.infer<typeof CancelExecution>;
/** `ok: false`: the agent does not know this execution. */
export const CancelReply = z.union([z.object({ ok: z.boolean() }), ErrorReply]);
export type CancelReply = z.infer<typeof CancelReply>;

// ---- dashboard feed ----

export const SubscribeExecution = z.object({ executionId, afterSeq: seqOrNone.optional() });
export type SubscribeExecution = z.infer<typeof SubscribeExecution>;
export const SubscribeReply = z.union([z.object({ ok: z.literal(true) }), z.object({ ok: z.literal(false), error: ErrorReply.shape.error })]);
export type SubscribeReply = z.infer<typeof SubscribeReply>;

export const UnsubscribeExecution = z.object({ executionId });
export type UnsubscribeExecution = z.infer<typeof UnsubscribeExecution>;
export const UnsubscribeReply = z.object({ ok: z.boolean() });
export type UnsubscribeReply = z.infer<typeof UnsubscribeReply>;

/**
 * Bytes as base64 text (RFC 4648, padded), for viewers of protocol 4 and later: the whole message
 * is one text WebSocket frame, where a binary attachment is a second frame.
 */
export const Base64Bytes = z
  .base64()
  .max((Math.ceil(MAX_CHUNK_BYTES / 3) * 4))
  .meta({ description: `Bytes as base64 text (RFC 4648, padded), at most ${MAX_CHUNK_BYTES} bytes once decoded.` });

/** cp -> viewer: one stored chunk of output; its bytes as base64 text for viewers of protocol 4 and later, binary for the others. */
export const ExecutionOutputEvent = z.object({ executionId, seq, stream: z.enum(STREAMS), data: z.union([Base64Bytes, Bytes]) });
export type ExecutionOutputEvent = z.infer<typeof ExecutionOutputEvent>;
export const ExecutionStatusEvent = z.object({
  executionId,
  status: z.enum(EXECUTION_STATUSES),
  exitCode: z.number().int().nullable().optional(),
});
export type ExecutionStatusEvent = z.infer<typeof ExecutionStatusEvent>;
export const ServerStatusEvent = z.object({ serverId: z.uuid(), status: z.enum(['online', 'offline']) });
export type ServerStatusEvent = z.infer<typeof ServerStatusEvent>;
export const ExecutionCreatedEvent = z.object({
  executionId,
  scriptId: z.uuid(),
  serverId: z.uuid(),
  webhookId: z.uuid().nullable(),
  trigger: z.enum(TRIGGERS),
  status: z.enum(EXECUTION_STATUSES),
});
export type ExecutionCreatedEvent = z.infer<typeof ExecutionCreatedEvent>;
/** cp -> viewer: the viewer fell too far behind; resubscribe with `afterSeq` = the last seq it holds. */
export const ResubscribeEvent = z.object({ executionId, reason: z.string() });
export type ResubscribeEvent = z.infer<typeof ResubscribeEvent>;

/** Parses `payload` with `schema`; never throws. */
export function parseMessage<T extends z.ZodType>(
  schema: T,
  payload: unknown,
): { ok: true; value: z.output<T> } | { ok: false; error: ErrorReply } {
  const r = schema.safeParse(payload);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  return { ok: false, error: protocolError('INVALID_PAYLOAD', `${where}${issue?.message ?? 'invalid payload'}`) };
}
