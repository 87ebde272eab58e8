import type { OutputStream } from '@app/protocol';
import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from './sql.js';

export interface StoredChunk {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

/** Rows read per page when output is streamed: at most 16 x 256 KiB (bytea comes as hex text, twice that) per reader. */
export const OUTPUT_PAGE_ROWS = 16;

/** Reads of the execution_output table, in seq order (ExecutionRepository is its only writer). */
@Injectable()
export class ExecutionOutputStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** The first seq not stored (how much is contiguous from 0): where the agent must resend from. */
  async firstMissingSeq(executionId: string, q: { query: DataSource['query'] } = this.db): Promise<number> {
    const [row] = await rows<{ from_seq: number }>(
      q,
      `SELECT CASE
         WHEN NOT EXISTS (SELECT 1 FROM execution_output WHERE execution_id = $1 AND seq = 0) THEN 0
         ELSE (SELECT min(o.seq) + 1 FROM execution_output o
               WHERE o.execution_id = $1
                 AND NOT EXISTS (SELECT 1 FROM execution_output p WHERE p.execution_id = $1 AND p.seq = o.seq + 1))
       END AS from_seq`,
      [executionId],
    );
    return Number(row?.from_seq ?? 0);
  }

  /** Up to `limit` chunks after `afterSeq`, in seq order, optionally of one stream. */
  async page(executionId: string, afterSeq: number, limit = OUTPUT_PAGE_ROWS, stream?: OutputStream): Promise<StoredChunk[]> {
    const params: unknown[] = [executionId, afterSeq, limit];
    let filter = '';
    if (stream) {
      params.push(stream);
      filter = 'AND stream = $4';
    }
    return rows<StoredChunk>(
      this.db,
      `SELECT seq, stream, data FROM execution_output
       WHERE execution_id = $1 AND seq > $2 ${filter} ORDER BY seq LIMIT $3`,
      params,
    );
  }

  /** The last `bytes` bytes of the stored output (both streams, in seq order). */
  async tail(executionId: string, bytes: number): Promise<Buffer> {
    const found = await rows<{ data: Buffer }>(
      this.db,
      `SELECT data FROM (
         SELECT seq, data, sum(octet_length(data)) OVER (ORDER BY seq DESC) AS upto
         FROM execution_output WHERE execution_id = $1
       ) t WHERE upto - octet_length(data) < $2 ORDER BY seq`,
      [executionId, bytes],
    );
    const all = Buffer.concat(found.map((r) => r.data));
    return all.length > bytes ? all.subarray(all.length - bytes) : all;
  }

  /** Every stored chunk after `afterSeq`, page by page, so memory stays bounded whatever the size. */
  async *chunksAfter(executionId: string, afterSeq: number, stream?: OutputStream): AsyncGenerator<StoredChunk> {
    let after = afterSeq;
    for (;;) {
      const page = await this.page(executionId, after, OUTPUT_PAGE_ROWS, stream);
      for (const c of page) yield c;
      if (page.length < OUTPUT_PAGE_ROWS) return;
      after = page[page.length - 1]!.seq;
    }
  }
}
