import type { ExecutionStatus, OutputStream, StartExecution } from '@app/protocol';
import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';
import type { Execution } from './execution.entity.js';

/** A chunk of output that was just stored (never a resent duplicate). */
export interface OutputStored {
  executionId: string;
  workspaceId: string;
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

/** An execution moved to another status (committed). */
export interface StatusChanged {
  executionId: string;
  workspaceId: string;
  serverId: string;
  status: ExecutionStatus;
  exitCode: number | null;
}

/**
 * In-process notifications about executions; the dispatcher, the SSE feed and the dashboard feed
 * listen. They only say what this process just committed: the database stays the source of truth,
 * and a listener on another node reads it (or gets the same news through the socket.io adapter).
 */
@Injectable()
export class ExecutionEvents {
  /**
   * A new execution row was committed: `queued`, or `dispatched` with the start command this node
   * must send (it holds the server's agent), or `dispatched` without one (start null: another node
   * holds the agent and builds the start itself, from the run's id).
   */
  readonly created = new Subject<Execution & { start: StartExecution | null }>();
  readonly output = new Subject<OutputStored>();
  readonly status = new Subject<StatusChanged>();
  /**
   * A server whose oldest waiting run of a `queue` webhook may go now (the run ahead of it ended,
   * or the webhook left the policy): the dispatcher hands it to the agent.
   */
  readonly released = new Subject<string>();
  /** A dispatched or running execution should be stopped: the agents gateway tells its agent. */
  readonly cancelRequested = new Subject<{ executionId: string; serverId: string }>();
}
