import { isTerminal, type OutputStream } from '@app/protocol';
import { Injectable, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { merge, type Subscription } from 'rxjs';
import { ExecutionEvents } from './execution-events.js';
import { ExecutionOutputStore, type StoredChunk } from './execution-output.service.js';
import type { ExecutionView } from './execution-view.js';
import { ExecutionsService } from './executions.service.js';

/** Re-reads the database this often while a feed is open: catches what another node stored. */
const POLL_MS = 2_000;
/** Live events held for a slow reader; past this it catches up from the database instead. */
const MAX_PENDING = 1_000;

/**
 * Streams stored output to HTTP clients without holding it in memory: raw bytes
 * (GET .../output) and Server-Sent Events, backlog then live (GET .../events).
 */
@Injectable()
export class ExecutionFeed {
  private readonly logger = new Logger(ExecutionFeed.name);

  constructor(
    private readonly executions: ExecutionsService,
    private readonly output: ExecutionOutputStore,
    private readonly events: ExecutionEvents,
  ) {}

  /** The stored bytes in seq order, page by page, respecting the client's pace. */
  async writeOutput(res: Response, executionId: string, stream?: OutputStream): Promise<void> {
    res.status(200);
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    try {
      for await (const c of this.output.chunksAfter(executionId, -1, stream)) {
        if (!(await write(res, c.data))) return;
      }
      res.end();
    } catch (err) {
      this.logger.error({ err, executionId }, 'output stream failed');
      res.destroy();
    }
  }

  /**
   * SSE: `output` events (`id:` = seq, data `{seq, stream, data: base64}`) from after
   * `lastEventId`, then live ones, and `status` events (the execution, without an id); ends after
   * the terminal status. Live events are subscribed before the backlog is read and deduplicated by
   * seq, so nothing falls in between; a gap (another node stored it, or the reader was slow) is
   * filled from the database.
   */
  async writeEvents(res: Response, workspaceId: string, executionId: string, lastEventId: number): Promise<void> {
    let last = lastEventId;
    let closed = false;
    let wake: (() => void) | null = null;
    const pending: ({ kind: 'output'; chunk: StoredChunk } | { kind: 'status' })[] = [];
    let overflow = false;
    const signal = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const sub: Subscription = merge(this.events.output, this.events.status).subscribe((e) => {
      if (e.executionId !== executionId) return;
      if (pending.length >= MAX_PENDING) {
        overflow = true;
        pending.length = 0;
      }
      pending.push('seq' in e ? { kind: 'output', chunk: e } : { kind: 'status' });
      signal();
    });
    // The response's close, not the request's: a GET's request 'close' fires once its (empty) body is read.
    res.on('close', () => {
      closed = true;
      signal();
    });

    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache, no-transform');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();

    const sendChunk = async (c: StoredChunk) => {
      const data = JSON.stringify({ seq: c.seq, stream: c.stream, data: c.data.toString('base64') });
      last = c.seq;
      return write(res, `id: ${c.seq}\nevent: output\ndata: ${data}\n\n`);
    };
    const drainDb = async () => {
      for await (const c of this.output.chunksAfter(executionId, last)) {
        if (closed || !(await sendChunk(c))) return false;
      }
      return true;
    };
    const sendStatus = async (view: ExecutionView) => write(res, `event: status\ndata: ${JSON.stringify(view)}\n\n`);

    try {
      let view = await this.executions.get(workspaceId, executionId);
      let sentStatus = '';
      for (;;) {
        if (closed) return;
        if (overflow) {
          overflow = false;
          pending.length = 0;
        }
        if (!(await drainDb())) return;
        // Terminal means every chunk is stored: drain once more after seeing it, then say so and end.
        if (isTerminal(view.status)) {
          if (!(await drainDb())) return;
          await sendStatus(view);
          return;
        }
        const statusKey = `${view.status}:${view.cancelRequested}`;
        if (statusKey !== sentStatus) {
          sentStatus = statusKey;
          if (!(await sendStatus(view))) return;
        }
        // Live: write what came in order; a status change or a gap re-reads the database.
        let reread = false;
        for (;;) {
          while (pending.length && !reread && !closed) {
            const e = pending.shift()!;
            if (e.kind === 'status') reread = true;
            else if (e.chunk.seq <= last) continue;
            else if (e.chunk.seq === last + 1) {
              if (!(await sendChunk(e.chunk))) return;
            } else reread = true;
          }
          if (reread || closed || overflow) break;
          const timedOut = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(true), POLL_MS);
            wake = () => {
              clearTimeout(t);
              resolve(false);
            };
          });
          if (timedOut) {
            if (!(await write(res, ': keep-alive\n\n'))) return;
            break;
          }
        }
        view = await this.executions.get(workspaceId, executionId);
      }
    } catch (err) {
      this.logger.error({ err, executionId }, 'event stream failed');
    } finally {
      sub.unsubscribe();
      res.end();
    }
  }
}

/** Writes and waits for the buffer to drain when it is full; false when the client went away. */
function write(res: Response, data: Buffer | string): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  if (res.write(data)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
