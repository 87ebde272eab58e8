import { z } from 'zod';
import {
  EXECUTION_STATUSES,
  INTERPRETERS,
  MAX_CHUNK_BYTES,
  MAX_CHUNKS_PER_BATCH,
  MAX_SCRIPT_CONTENT,
  STREAMS,
} from './constants.js';

const executionId = z.uuid();
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Bytes as they cross socket.io: a Buffer in Node, an ArrayBuffer or Uint8Array in a browser. */
const bytes = z
  .union([z.instanceof(Uint8Array), z.instanceof(ArrayBuffer)])
  .transform((b) => (b instanceof Uint8Array ? b : new Uint8Array(b)))
  .refine((b) => b.byteLength <= MAX_CHUNK_BYTES, `chunk larger than ${MAX_CHUNK_BYTES} bytes`);

/** Handshake `auth` an agent sends when it connects to `/agent`. */
export const AgentHandshake = z.object({
  token: z.string().min(1).max(512),
  protocolVersion: z.number().int(),
  agentVersion: z.string().max(64).default('unknown'),
  hostname: z.string().max(255).default(''),
  platform: z.string().max(64).default(''),
});
export type AgentHandshake = z.infer<typeof AgentHandshake>;

/** cp -> agent: run this script now. */
export const StartExecution = z.object({
  executionId,
  interpreter: z.enum(INTERPRETERS),
  content: z.string().max(MAX_SCRIPT_CONTENT),
  env: z.record(z.string(), z.string()),
  /** Names in `env` whose values (script secrets) the agent replaces by `***` in the output. */
  maskEnv: z.array(z.string().max(64)).max(1000).optional(),
  timeoutMs: z.number().int().min(1).max(3_600_000),
  maxOutputBytes: z.number().int().min(0),
});
export type StartExecution = z.infer<typeof StartExecution>;

export const StartReply = z.union([
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), reason: z.string() }),
]);
export type StartReply = z.infer<typeof StartReply>;

export const OutputChunk = z.object({ seq, stream: z.enum(STREAMS), data: bytes });
export type OutputChunk = z.infer<typeof OutputChunk>;

/** agent -> cp: consecutive chunks of one execution, in seq order. */
export const OutputBatch = z.object({
  executionId,
  chunks: z.array(OutputChunk).min(1).max(MAX_CHUNKS_PER_BATCH),
});
export type OutputBatch = z.infer<typeof OutputBatch>;

/** Ack of an output batch: every chunk of the batch, up to `ackedSeq`, is durably stored. */
export type OutputAck = { ackedSeq: number } | ErrorReply;

/** agent -> cp: the process ended and every chunk up to `lastSeq` was acked. */
export const ExecutionFinished = z.object({
  executionId,
  exitCode: z.number().int().nullable(),
  signal: z.string().max(32).nullable(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
  /** -1 when the script wrote nothing. */
  lastSeq: z.number().int().min(-1),
  outputBytes: z.number().int().min(0),
  truncated: z.boolean(),
  /** Why the script could not be started (missing interpreter, ...), if it could not. */
  error: z.string().max(2000).nullable().default(null),
});
export type ExecutionFinished = z.infer<typeof ExecutionFinished>;

export type FinishedReply = { ok: true } | ErrorReply;

/** agent -> cp, first message after every (re)connect. */
export const AgentHello = z.object({
  running: z.array(z.object({ executionId, nextSeq: seq })).max(10_000),
  finished: z.array(ExecutionFinished).max(10_000),
});
export type AgentHello = z.infer<typeof AgentHello>;

/** The cp asks the agent to resend output it has not stored, per execution, from `fromSeq`. */
export type HelloReply = { resend: { executionId: string; fromSeq: number }[] } | ErrorReply;

export const CancelExecution = z.object({ executionId });
export type CancelExecution = z.infer<typeof CancelExecution>;
export type CancelReply = { ok: boolean };

/** Negative ack for a refused message: a stable code and words for a person. */
export interface ErrorReply {
  error: { code: string; message: string };
}

// ---- dashboard feed ----

export const SubscribeExecution = z.object({ executionId, afterSeq: z.number().int().min(-1).optional() });
export type SubscribeExecution = z.infer<typeof SubscribeExecution>;
export type SubscribeReply = { ok: true } | ({ ok: false } & ErrorReply);

/** cp -> viewer: one stored chunk of output. */
export interface ExecutionOutputEvent {
  executionId: string;
  seq: number;
  stream: (typeof STREAMS)[number];
  data: Uint8Array;
}
export interface ExecutionStatusEvent {
  executionId: string;
  status: (typeof EXECUTION_STATUSES)[number];
  exitCode?: number | null;
}
export interface ServerStatusEvent {
  serverId: string;
  status: 'online' | 'offline';
}
export interface ExecutionCreatedEvent {
  executionId: string;
  scriptId: string;
  serverId: string;
  webhookId: string | null;
  trigger: string;
  status: (typeof EXECUTION_STATUSES)[number];
}
/** cp -> viewer: the viewer fell too far behind; resubscribe with `afterSeq` = the last seq it holds. */
export interface ResubscribeEvent {
  executionId: string;
  reason: string;
}

/** Parses `payload` with `schema`; never throws. */
export function parseMessage<T extends z.ZodType>(
  schema: T,
  payload: unknown,
): { ok: true; value: z.output<T> } | { ok: false; error: ErrorReply } {
  const r = schema.safeParse(payload);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  return {
    ok: false,
    error: { error: { code: 'INVALID_PAYLOAD', message: `${where}${issue?.message ?? 'invalid payload'}` } },
  };
}
