import type { DataSource } from 'typeorm';
import { rows } from './sql.js';

/**
 * Deletes a script or a server of the workspace, and with it its runs and their output (the
 * foreign keys cascade), giving the output's bytes back to the workspace's usage in the same
 * transaction. The runs are locked first, in the order every run statement locks them, so an
 * output batch being stored for one of them has either committed (and is counted here) or waits
 * and then finds its run gone. False when the workspace has no such script or server.
 */
export async function deleteWithRuns(db: DataSource, owner: 'script' | 'server', workspaceId: string, id: string): Promise<boolean> {
  const column = owner === 'script' ? 'script_id' : 'server_id';
  return db.transaction(async (tx) => {
    await tx.query(`SELECT count(*) FROM (SELECT 1 FROM execution WHERE ${column} = $1 AND workspace_id = $2 ORDER BY id FOR UPDATE) locked`, [id, workspaceId]);
    await tx.query(
      `UPDATE workspace w SET output_bytes = greatest(w.output_bytes - f.bytes, 0)
       FROM (SELECT coalesce(sum(octet_length(o.data)), 0) AS bytes
             FROM execution_output o JOIN execution x ON x.id = o.execution_id
             WHERE x.${column} = $1 AND x.workspace_id = $2) f
       WHERE w.id = $2 AND f.bytes > 0`,
      [id, workspaceId],
    );
    const gone = await rows(tx, `DELETE FROM ${owner} WHERE id = $1 AND workspace_id = $2 RETURNING id`, [id, workspaceId]);
    return gone.length > 0;
  });
}
