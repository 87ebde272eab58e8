import type {
  AgentHello,
  CancelExecution,
  CancelReply,
  ErrorReply,
  ExecutionCreatedEvent,
  ExecutionFinished,
  ExecutionOutputEvent,
  ExecutionStatusEvent,
  FinishedReply,
  HelloReply,
  OutputAck,
  OutputBatch,
  ResubscribeEvent,
  ServerStatusEvent,
  StartExecution,
  StartReply,
  SubscribeExecution,
  SubscribeReply,
} from './messages.js';

export const AgentEvents = {
  hello: 'agent.hello',
  start: 'execution.start',
  output: 'execution.output',
  finished: 'execution.finished',
  cancel: 'execution.cancel',
} as const;

export const DashboardEvents = {
  subscribe: 'execution.subscribe',
  unsubscribe: 'execution.unsubscribe',
  output: 'execution.output',
  status: 'execution.status',
  created: 'execution.created',
  serverStatus: 'server.status',
  resubscribe: 'execution.resubscribe',
} as const;

/** Events the control plane sends to an agent on `/agent`. */
export interface ServerToAgentEvents {
  'execution.start': (cmd: StartExecution, ack: (r: StartReply | ErrorReply) => void) => void;
  'execution.cancel': (cmd: CancelExecution, ack: (r: CancelReply | ErrorReply) => void) => void;
}

/** Events an agent sends to the control plane on `/agent`. */
export interface AgentToServerEvents {
  'agent.hello': (msg: AgentHello, ack: (r: HelloReply) => void) => void;
  'execution.output': (batch: OutputBatch, ack: (r: OutputAck) => void) => void;
  'execution.finished': (msg: ExecutionFinished, ack: (r: FinishedReply) => void) => void;
}

/** Events the control plane sends to a viewer on `/dashboard`. */
export interface ServerToViewerEvents {
  'execution.output': (e: ExecutionOutputEvent) => void;
  'execution.status': (e: ExecutionStatusEvent) => void;
  'execution.created': (e: ExecutionCreatedEvent) => void;
  'server.status': (e: ServerStatusEvent) => void;
  'execution.resubscribe': (e: ResubscribeEvent) => void;
}

/** Events a viewer sends on `/dashboard`. */
export interface ViewerToServerEvents {
  'execution.subscribe': (msg: SubscribeExecution, ack: (r: SubscribeReply) => void) => void;
  'execution.unsubscribe': (msg: { executionId: string }, ack: (r: { ok: boolean }) => void) => void;
}
