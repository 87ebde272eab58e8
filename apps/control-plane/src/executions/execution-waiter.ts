import { isTerminal } from '@app/protocol';
import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ExecutionEvents, type StatusChanged } from './execution-events.js';
import { ExecutionOutputStore } from './execution-output.service.js';
import { ExecutionsService } from './executions.service.js';
import type { ExecutionView } from './execution-view.js';

/** The output a waiting caller gets: the end of it. */
export const WAIT_OUTPUT_BYTES = 64 * 1024;

/** The 200 answer of a call that waited for its run (Prefer: wait=N). */
export interface Finished {
  executionId: string;
  status: ExecutionView['status'];
  exitCode: number | null;
  signal: string | null;
  durationMs: number | null;
  /** The last 64 KiB of the output as text (invalid UTF-8 replaced). */
  output: string;
  outputBytes: number;
  outputTruncated: boolean;
  links: { execution: string; output: string; events: string };
}

/** A wait begun before its execution exists (so no status change can slip between the two). */
export interface Wait {
  /** Resolves with the ended run's answer within `ms`, or null (still running, or not yet known here). */
  until(workspaceId: string, executionId: string, ms: number): Promise<Finished | null>;
  /** Gives the wait up (nothing was created). */
  cancel(): void;
}

/**
 * Callers waiting for their run to end. No loop and no thread per caller: one listener on this
 * process's status events for all of them, a timer each, and one read when the run ended or the
 * time is up. A run whose status is changed on another node (its agent is held there) is not
 * seen live: the read at the deadline still finds it ended, so the caller never misses it, it
 * only hears at the deadline.
 */
@Injectable()
export class ExecutionWaiter implements OnModuleInit, OnModuleDestroy {
  private readonly waiting = new Map<string, () => void>();
  /** Runs that ended while some wait had begun but not yet learnt its id. */
  private readonly endedMeanwhile = new Set<string>();
  private begun = 0;
  private subscription?: Subscription;

  constructor(
    private readonly events: ExecutionEvents,
    private readonly executions: ExecutionsService,
    private readonly store: ExecutionOutputStore,
  ) {}

  onModuleInit(): void {
    this.subscription = this.events.status.subscribe((e: StatusChanged) => {
      if (!isTerminal(e.status)) return;
      const wake = this.waiting.get(e.executionId);
      if (wake) wake();
      else if (this.begun > 0) this.endedMeanwhile.add(e.executionId);
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
    for (const wake of this.waiting.values()) wake();
  }

  begin(): Wait {
    this.begun++;
    let open = true;
    const end = () => {
      if (!open) return;
      open = false;
      if (--this.begun === 0) this.endedMeanwhile.clear();
    };
    return {
      cancel: end,
      until: async (workspaceId, executionId, ms) => {
        const ended = this.endedMeanwhile.has(executionId);
        end();
        if (!ended) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(wake, ms);
            function wake() {
              clearTimeout(timer);
              resolve();
            }
            const done = () => {
              this.waiting.delete(executionId);
              wake();
            };
            this.waiting.set(executionId, done);
            timer.unref();
          });
          this.waiting.delete(executionId);
        }
        return this.finished(workspaceId, executionId);
      },
    };
  }

  /** One read: the answer when the run has ended, else null. */
  private async finished(workspaceId: string, executionId: string): Promise<Finished | null> {
    const view = await this.executions.get(workspaceId, executionId);
    if (!isTerminal(view.status)) return null;
    const tail = await this.store.tail(executionId, WAIT_OUTPUT_BYTES);
    const base = `/api/v1/executions/${executionId}`;
    return {
      executionId,
      status: view.status,
      exitCode: view.exitCode,
      signal: view.signal,
      durationMs: view.durationMs,
      output: new TextDecoder('utf-8', { fatal: false }).decode(tail),
      outputBytes: view.outputBytes,
      outputTruncated: view.outputTruncated,
      links: { execution: base, output: `${base}/output`, events: `${base}/events` },
    };
  }
}
