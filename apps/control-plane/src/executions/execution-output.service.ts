import type { ExecutionStatus, OutputStream } from '@app/protocol';
import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { preparedRows, rows } from './sql.js';

/** Batches of up to this many chunks (the usual ones) run as prepared statements, one per count. */
const PREPARED_MAX_CHUNKS = 4;

export interface StoredChunk {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

/** Rows read per page when output is streamed: at most 16 x 256 KiB (bytea comes as hex text, twice that) per reader. */
export const OUTPUT_PAGE_ROWS = 16;

/** The execution_output table: idempotent inserts on (execution, seq), paged reads in seq order. */
@Injectable()
export class ExecutionOutputStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * The usual output batch in one statement (one round trip, its own transaction): locks the
   * execution if it belongs to `serverId`, and while it is `dispatched` or `running` inserts the
   * chunks idempotently, adds the bytes of rows actually inserted to output_bytes and makes it
   * `running`. Returns null when the execution is not this server's; otherwise its status before,
   * whether a finished report is held, and the chunks that were new.
   */
  async storeBatch(
    executionId: string,
    serverId: string,
    chunks: StoredChunk[],
  ): Promise<{ workspaceId: string; before: ExecutionStatus; hasReport: boolean; stored: StoredChunk[] } | null> {
    const values: string[] = [];
    const params: unknown[] = [executionId, serverId];
    for (const c of chunks) {
      params.push(c.seq, c.stream, c.data);
      const n = params.length;
      values.push(`($${n - 2}::int, $${n - 1}::text, $${n}::bytea)`);
    }
    const query = chunks.length <= PREPARED_MAX_CHUNKS ? preparedRows : rows;
    const [row] = await query<{ workspace_id: string; status: ExecutionStatus; has_report: boolean; inserted: number[] }>(
      this.db,
      `WITH e AS (
         SELECT id, workspace_id, status, finish_report IS NOT NULL AS has_report
         FROM execution WHERE id = $1 AND server_id = $2 FOR UPDATE
       ), ins AS (
         INSERT INTO execution_output (execution_id, seq, stream, data)
         SELECT e.id, c.seq, c.stream, c.data FROM e, (VALUES ${values.join(', ')}) AS c(seq, stream, data)
         WHERE e.status IN ('dispatched', 'running')
         ON CONFLICT (execution_id, seq) DO NOTHING
         RETURNING seq, octet_length(data) AS bytes
       ), upd AS (
         UPDATE execution x SET output_bytes = x.output_bytes + (SELECT coalesce(sum(bytes), 0) FROM ins),
           status = 'running', started_at = COALESCE(x.started_at, now())
         FROM e WHERE x.id = e.id AND e.status IN ('dispatched', 'running')
         RETURNING x.id
       )
       SELECT e.workspace_id, e.status, e.has_report,
              (SELECT coalesce(array_agg(seq), '{}') FROM ins) AS inserted,
              (SELECT count(*) FROM upd) AS updated
       FROM e`,
      params,
    );
    if (!row) return null;
    const fresh = new Set(row.inserted.map(Number));
    return { workspaceId: row.workspace_id, before: row.status, hasReport: row.has_report, stored: chunks.filter((c) => fresh.has(c.seq)) };
  }

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
