import { HttpStatus, Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { AppException, notFound } from '../common/app-exception.js';
import { newestFirst, type Page, toPage } from '../common/pagination.js';
import { SecretsService } from '../common/secrets.service.js';
import { rows } from '../executions/sql.js';
import { ScriptSecret } from './secret.entity.js';
import { MAX_SECRET_VALUE_BYTES, secretNameProblem } from './secret-names.js';

/** Binds sealed values to their use: a script secret cannot be opened as a webhook secret. */
export const SCRIPT_SECRET_PURPOSE = 'script-secret';

/**
 * SQL: the rows of the secret table `sec` a run gets (SQL expressions of its workspace, its script
 * version's declared names and its server), and their order: the workspace's first, the server's
 * after them, so that applied in order the server's value wins. For valuesFor and the claim
 * statement that reads them with a run (ExecutionRepository.withStart).
 */
export const runSecrets = (sec: string, run: { workspaceId: string; names: string; serverId: string }) => ({
  where: `${sec}.workspace_id = ${run.workspaceId} AND ${sec}.name = ANY(${run.names}) AND (${sec}.server_id IS NULL OR ${sec}.server_id = ${run.serverId})`,
  order: `${sec}.server_id NULLS FIRST, ${sec}.name`,
});

/** A secret as every route shows it: never its value. */
export interface SecretView {
  id: string;
  name: string;
  serverId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * Script secrets: write-only values encrypted at rest with the master key, for a workspace or one
 * of its servers. Values leave this class only through `valuesFor` and `open`, on their way into a
 * start command; no route returns them and nothing logs them.
 */
@Injectable()
export class ScriptSecretsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @InjectRepository(ScriptSecret) private readonly secrets: Repository<ScriptSecret>,
    private readonly crypto: SecretsService,
  ) {}

  async create(workspaceId: string, dto: { name: string; value: string; serverId?: string }): Promise<SecretView> {
    const problem = secretNameProblem(dto.name);
    if (problem) throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', `name ${problem}`);
    checkValue(dto.value);
    if (dto.serverId) {
      const [server] = await rows(this.db, `SELECT 1 FROM server WHERE id = $1 AND workspace_id = $2`, [dto.serverId, workspaceId]);
      if (!server) throw notFound('Server');
    }
    try {
      const saved = await this.secrets.save(
        this.secrets.create({
          workspaceId,
          serverId: dto.serverId ?? null,
          name: dto.name,
          valueEncrypted: this.crypto.seal(dto.value, SCRIPT_SECRET_PURPOSE),
        }),
      );
      return toView(saved);
    } catch (e) {
      if ((e as { driverError?: { code?: string } }).driverError?.code === '23505') {
        throw new AppException(HttpStatus.CONFLICT, 'CONFLICT', `A secret named ${dto.name} already exists ${dto.serverId ? 'for this server' : 'in this workspace'}`);
      }
      throw e;
    }
  }

  async list(workspaceId: string, limit = 50, cursor?: string): Promise<Page<SecretView>> {
    const qb = this.secrets.createQueryBuilder('s').where('s.workspace_id = :workspaceId', { workspaceId });
    newestFirst(qb, 's', cursor, limit);
    return toPage(await qb.getMany(), limit, (s) => ({ at: s.createdAt, id: s.id }), toView);
  }

  async get(workspaceId: string, id: string): Promise<SecretView> {
    const found = await this.secrets.findOne({ where: { id, workspaceId } });
    if (!found) throw notFound('Secret');
    return toView(found);
  }

  /** A new value; runs not yet dispatched get it (a start command reads values when it is built). */
  async update(workspaceId: string, id: string, value: string): Promise<SecretView> {
    checkValue(value);
    const r = await this.secrets.update({ id, workspaceId }, { valueEncrypted: this.crypto.seal(value, SCRIPT_SECRET_PURPOSE) });
    if (!r.affected) throw notFound('Secret');
    return this.get(workspaceId, id);
  }

  async delete(workspaceId: string, id: string): Promise<void> {
    const r = await this.secrets.delete({ id, workspaceId });
    if (!r.affected) throw notFound('Secret');
  }

  /** Names defined for runs on this server: the workspace's and the server's own. */
  async namesFor(workspaceId: string, serverId: string): Promise<Set<string>> {
    const found = await rows<{ name: string }>(
      this.db,
      `SELECT DISTINCT name FROM secret WHERE workspace_id = $1 AND (server_id IS NULL OR server_id = $2)`,
      [workspaceId, serverId],
    );
    return new Set(found.map((r) => r.name));
  }

  /**
   * The values of `names` for runs of this workspace on this server, the server's own winning over
   * the workspace's, and the names that have neither. One query for any number of runs' needs.
   */
  async valuesFor(workspaceId: string, serverId: string, names: string[]): Promise<{ values: Record<string, string>; missing: string[] }> {
    if (names.length === 0) return { values: {}, missing: [] };
    const applying = runSecrets('s', { workspaceId: '$1', names: '$2::text[]', serverId: '$3' });
    const found = await rows<{ name: string; server_id: string | null; value_encrypted: Buffer }>(
      this.db,
      `SELECT s.name, s.server_id, s.value_encrypted FROM secret s WHERE ${applying.where} ORDER BY ${applying.order}`,
      [workspaceId, names, serverId],
    );
    return this.open(names, found.map((r) => ({ name: r.name, value: r.value_encrypted })));
  }

  /**
   * valuesFor() from sealed values already read (with a claim, see ExecutionRepository.withStart),
   * in the order they apply: the workspace's first, then the server's over them.
   */
  open(names: string[], sealed: { name: string; value: Buffer }[]): { values: Record<string, string>; missing: string[] } {
    const values: Record<string, string> = {};
    for (const r of sealed) values[r.name] = this.crypto.open(r.value, SCRIPT_SECRET_PURPOSE);
    return { values, missing: names.filter((n) => !(n in values)) };
  }
}

function checkValue(value: string): void {
  if (Buffer.byteLength(value, 'utf8') > MAX_SECRET_VALUE_BYTES) {
    throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', `value must be at most ${MAX_SECRET_VALUE_BYTES} bytes`);
  }
  if (value.includes('\0')) throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'value must not contain NUL characters');
}

function toView(s: ScriptSecret): SecretView {
  return { id: s.id, name: s.name, serverId: s.serverId, createdAt: s.createdAt, updatedAt: s.updatedAt };
}
