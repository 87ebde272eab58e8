import type { z } from 'zod';
import {
  AgentHello,
  CancelExecution,
  CancelReply,
  ExecutionCreatedEvent,
  ExecutionFinished,
  ExecutionOutputEvent,
  ExecutionSpawned,
  ExecutionStatusEvent,
  FinishedReply,
  HelloReply,
  OutputAck,
  OutputBatch,
  ResubscribeEvent,
  ServerStatusEvent,
  SpawnedReply,
  StartExecution,
  StartReply,
  SubscribeExecution,
  SubscribeReply,
  UnsubscribeExecution,
  UnsubscribeReply,
} from './messages.js';

/** One event of a namespace: who sends it, its payload, its acknowledgement. */
export interface EventSpec {
  from: 'agent' | 'viewer' | 'control-plane';
  request: z.ZodType;
  /** The acknowledgement the sender waits for; null: sent without one (a push to viewers). */
  reply: z.ZodType | null;
  /** The first protocol version that has it. */
  since: number;
  summary: string;
}

/**
 * Every event of `/agent`: the one place its payloads and acknowledgements are defined. Both sides
 * validate what they receive with these schemas, the socket.io event maps are derived from them,
 * and so is the AsyncAPI document.
 */
export const AGENT_EVENTS = {
  'agent.hello': {
    from: 'agent',
    request: AgentHello,
    reply: HelloReply,
    since: 1,
    summary:
      'First message after every (re)connect: what the agent holds. The control plane reconciles (what it thinks runs there but the agent does not know becomes `lost`) and answers, per execution, the first seq it has not stored. No work is sent before it.',
  },
  'execution.start': {
    from: 'control-plane',
    request: StartExecution,
    reply: StartReply,
    since: 1,
    summary:
      'Run this script. Acknowledged when accepted, before the process is spawned (runs beyond the agent’s concurrency wait in its queue); a repeated start of the same id is accepted and never run twice.',
  },
  'execution.spawned': {
    from: 'agent',
    request: ExecutionSpawned,
    reply: SpawnedReply,
    since: 2,
    summary: 'The script’s process was spawned: the execution is `running` from now. Sent again after a reconnect until acknowledged.',
  },
  'execution.output': {
    from: 'agent',
    request: OutputBatch,
    reply: OutputAck,
    since: 1,
    summary: 'Consecutive output chunks of one execution, in seq order. Acknowledged once durably stored; unacknowledged chunks are sent again after a reconnect.',
  },
  'execution.finished': {
    from: 'agent',
    request: ExecutionFinished,
    reply: FinishedReply,
    since: 1,
    summary: 'The process ended and every chunk up to `lastSeq` was acknowledged. The execution becomes terminal once every chunk up to `lastSeq` is stored.',
  },
  'execution.cancel': {
    from: 'control-plane',
    request: CancelExecution,
    reply: CancelReply,
    since: 1,
    summary: 'Stop this execution: SIGTERM to its process group, SIGKILL after a grace period; a queued one never starts.',
  },
} as const satisfies Record<string, EventSpec>;

/** Every event of `/dashboard` (the live feed for viewers). */
export const DASHBOARD_EVENTS = {
  'execution.subscribe': {
    from: 'viewer',
    request: SubscribeExecution,
    reply: SubscribeReply,
    since: 1,
    summary: 'Watch an execution: its stored output after `afterSeq`, then live chunks, with no gap and no duplicate, then its status changes.',
  },
  'execution.unsubscribe': {
    from: 'viewer',
    request: UnsubscribeExecution,
    reply: UnsubscribeReply,
    since: 1,
    summary: 'Stop watching an execution.',
  },
  'execution.output': {
    from: 'control-plane',
    request: ExecutionOutputEvent,
    reply: null,
    since: 1,
    summary: 'One stored chunk of a watched execution, in seq order. `data` is base64 text for a viewer that announced protocol 4 or later (one WebSocket frame per message) when the chunk is at most 16 KiB, a binary attachment otherwise.',
  },
  'execution.status': {
    from: 'control-plane',
    request: ExecutionStatusEvent,
    reply: null,
    since: 1,
    summary: 'An execution of the viewer’s workspace changed status.',
  },
  'execution.created': {
    from: 'control-plane',
    request: ExecutionCreatedEvent,
    reply: null,
    since: 1,
    summary: 'An execution was created in the viewer’s workspace.',
  },
  'server.status': {
    from: 'control-plane',
    request: ServerStatusEvent,
    reply: null,
    since: 1,
    summary: 'A server of the viewer’s workspace went online or offline.',
  },
  'execution.resubscribe': {
    from: 'control-plane',
    request: ResubscribeEvent,
    reply: null,
    since: 1,
    summary: 'The viewer fell too far behind on a watched execution: subscribe again with `afterSeq` = the last seq it holds.',
  },
} as const satisfies Record<string, EventSpec>;

export type AgentEventTable = typeof AGENT_EVENTS;
export type DashboardEventTable = typeof DASHBOARD_EVENTS;
