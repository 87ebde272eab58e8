import type { z } from 'zod';
import type { AgentEventTable, DashboardEventTable, EventSpec } from './event-table.js';

export const AgentEvents = {
  hello: 'agent.hello',
  start: 'execution.start',
  spawned: 'execution.spawned',
  output: 'execution.output',
  finished: 'execution.finished',
  cancel: 'execution.cancel',
} as const satisfies Record<string, keyof AgentEventTable>;

export const DashboardEvents = {
  subscribe: 'execution.subscribe',
  unsubscribe: 'execution.unsubscribe',
  output: 'execution.output',
  status: 'execution.status',
  created: 'execution.created',
  serverStatus: 'server.status',
  resubscribe: 'execution.resubscribe',
} as const satisfies Record<string, keyof DashboardEventTable>;

/** A socket.io listener for one event of a table: the payload, and the ack when it has one. */
type Listener<S extends EventSpec> = S['reply'] extends z.ZodType
  ? (payload: z.output<S['request']>, ack: (reply: z.output<S['reply']>) => void) => void
  : (payload: z.output<S['request']>) => void;

type EventsFrom<T extends Record<string, EventSpec>, From extends EventSpec['from']> = {
  [E in keyof T as T[E]['from'] extends From ? E : never]: Listener<T[E]>;
};

/** The payload of an event of a table, as parsed. */
export type EventRequest<T extends Record<string, EventSpec>, E extends keyof T> = z.output<T[E]['request']>;
/** The acknowledgement of an event of a table, as parsed. */
export type EventReply<T extends Record<string, EventSpec>, E extends keyof T> = T[E]['reply'] extends z.ZodType ? z.output<T[E]['reply']> : never;

/** Events an agent sends to the control plane on `/agent`. */
export type AgentToServerEvents = EventsFrom<AgentEventTable, 'agent'>;
/** Events the control plane sends to an agent on `/agent`. */
export type ServerToAgentEvents = EventsFrom<AgentEventTable, 'control-plane'>;
/** Events a viewer sends on `/dashboard`. */
export type ViewerToServerEvents = EventsFrom<DashboardEventTable, 'viewer'>;
/** Events the control plane sends to a viewer on `/dashboard`. */
export type ServerToViewerEvents = EventsFrom<DashboardEventTable, 'control-plane'>;

export type AgentReportEvent = keyof AgentToServerEvents;
export type AgentRequest<E extends keyof AgentEventTable> = EventRequest<AgentEventTable, E>;
export type AgentReply<E extends keyof AgentEventTable> = EventReply<AgentEventTable, E>;
