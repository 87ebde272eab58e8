import { isTerminal, type OutputStream } from '@app/protocol';
import { Injectable, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { ExecutionOutputStore } from './execution-output.service.js';
import { ExecutionsService } from './executions.service.js';
import { OutputCursors } from './output-cursors.js';

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
    private readonly cursors: OutputCursors,
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
   * the terminal status. The order, holes, duplicates and slow readers are the cursor's business;
   * this only writes what it yields, at the client's pace.
   */
  async writeEvents(res: Response, workspaceId: string, executionId: string, lastEventId: number): Promise<void> {
    const cursor = this.cursors.cursor(workspaceId, executionId, lastEventId);
    // The response's close, not the request's: a GET's request 'close' fires once its (empty) body is read.
    res.on('close', () => cursor.close());

    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache, no-transform');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();

    let sentStatus = '';
    try {
      for await (const item of cursor) {
        if (item.kind === 'output') {
          const c = item.chunk;
          const data = JSON.stringify({ seq: c.seq, stream: c.stream, data: c.data.toString('base64') });
          if (!(await write(res, `id: ${c.seq}\nevent: output\ndata: ${data}\n\n`))) return;
          continue;
        }
        if (item.kind === 'idle' && !(await write(res, ': keep-alive\n\n'))) return;
        // The whole execution, read now: also catches a cancel request, which changes no status.
        const view = await this.executions.get(workspaceId, executionId);
        const ending = item.kind === 'status' && isTerminal(item.status);
        // Already over, but the cursor has not yielded the terminal status yet: output stored
        // before it may still be on its way, and the status comes after it.
        if (isTerminal(view.status) && !ending) continue;
        const key = `${view.status}:${view.cancelRequested}`;
        if (key === sentStatus) continue;
        sentStatus = key;
        if (!(await write(res, `event: status\ndata: ${JSON.stringify(view)}\n\n`))) return;
      }
    } catch (err) {
      this.logger.error({ err, executionId }, 'event stream failed');
    } finally {
      cursor.close();
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
