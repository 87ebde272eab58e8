import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { HttpStatus } from '@nestjs/common';
import { AppException, notFound } from '../common/app-exception.js';
import { reserveWorkspaceSlot } from '../common/workspace-limits.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { secretNameProblem } from '../secrets/secret-names.js';
import { decodeNumberCursor, encodeNumberCursor, newestFirst, type Page, toPage, toPageBy } from '../common/pagination.js';
import type { CreateScriptDto, UpdateScriptDto } from './dto/scripts.dto.js';
import { ScriptVersion } from './script-version.entity.js';
import { Script } from './script.entity.js';
import { deleteWithRuns } from '../executions/run-deletion.js';

export interface ScriptView {
  id: string;
  name: string;
  description: string;
  interpreter: Script['interpreter'];
  timeoutSeconds: number;
  maxOutputBytes: number;
  version: number;
  content?: string;
  /** Secrets its runs get (with the content: a change is the next version). */
  secrets?: string[];
  /** The user its runs ask for (with the content); null: the agent's default script user. */
  runAs?: string | null;
  createdAt: Date;
  updatedAt: Date;
}

@Injectable()
export class ScriptsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly db: DataSource,
    @InjectRepository(Script) private readonly scripts: Repository<Script>,
    @InjectRepository(ScriptVersion) private readonly versions: Repository<ScriptVersion>,
  ) {}

  async create(workspaceId: string, dto: CreateScriptDto): Promise<ScriptView> {
    const secrets = checkSecretNames(dto.secrets ?? []);
    return this.db.transaction(async (tx) => {
      await reserveWorkspaceSlot(tx, this.config, workspaceId, 'scripts');
      const script = await tx.getRepository(Script).save(
        tx.getRepository(Script).create({
          workspaceId,
          name: dto.name,
          description: dto.description ?? '',
          interpreter: dto.interpreter ?? 'bash',
          timeoutSeconds: dto.timeoutSeconds ?? 300,
          maxOutputBytes: dto.maxOutputBytes ?? 64 * 1024 * 1024,
          currentVersion: 1,
        }),
      );
      const runAs = dto.runAs ?? null;
      await tx.getRepository(ScriptVersion).insert({ scriptId: script.id, version: 1, content: dto.content, secrets, runAs });
      return toView(script, { content: dto.content, secrets, runAs });
    });
  }

  async list(workspaceId: string, limit = 50, cursor?: string): Promise<Page<ScriptView>> {
    const qb = this.scripts
      .createQueryBuilder('s')
      .where('s.workspace_id = :workspaceId', { workspaceId });
    newestFirst(qb, 's', cursor, limit);
    return toPage(await qb.getMany(), limit, (s) => ({ at: s.createdAt, id: s.id }), (s) => toView(s));
  }

  async find(workspaceId: string, id: string): Promise<Script> {
    const row = await this.scripts.findOne({ where: { id, workspaceId } });
    if (!row) throw notFound('Script');
    return row;
  }

  /** The script with the content of its current version. */
  async get(workspaceId: string, id: string): Promise<ScriptView> {
    const script = await this.find(workspaceId, id);
    const v = await this.versions.findOneOrFail({ where: { scriptId: id, version: script.currentVersion } });
    return toView(script, v);
  }

  /** Applies a change; a different `content`, `secrets` or `runAs` becomes the next version, atomically. */
  async update(workspaceId: string, id: string, dto: UpdateScriptDto): Promise<ScriptView> {
    const newSecrets = dto.secrets === undefined ? undefined : checkSecretNames(dto.secrets);
    return this.db.transaction(async (tx) => {
      const repo = tx.getRepository(Script);
      const script = await repo.findOne({ where: { id, workspaceId }, lock: { mode: 'pessimistic_write' } });
      if (!script) throw notFound('Script');
      const current = await tx.getRepository(ScriptVersion).findOneOrFail({ where: { scriptId: id, version: script.currentVersion } });
      const next = {
        content: dto.content ?? current.content,
        secrets: newSecrets ?? current.secrets,
        runAs: dto.runAs === undefined ? current.runAs : dto.runAs,
      };
      if (next.content !== current.content || next.secrets.join('\n') !== current.secrets.join('\n') || next.runAs !== current.runAs) {
        script.currentVersion += 1;
        await tx.getRepository(ScriptVersion).insert({ scriptId: id, version: script.currentVersion, ...next });
      }
      if (dto.name !== undefined) script.name = dto.name;
      if (dto.description !== undefined) script.description = dto.description;
      if (dto.interpreter !== undefined) script.interpreter = dto.interpreter;
      if (dto.timeoutSeconds !== undefined) script.timeoutSeconds = dto.timeoutSeconds;
      if (dto.maxOutputBytes !== undefined) script.maxOutputBytes = dto.maxOutputBytes;
      return toView(await repo.save(script), next);
    });
  }

  async delete(workspaceId: string, id: string): Promise<void> {
    if (!(await deleteWithRuns(this.db, 'script', workspaceId, id))) throw notFound('Script');
  }

  /** The history, newest version first, a page at a time (a script may have thousands). */
  async listVersions(
    workspaceId: string,
    id: string,
    limit = 50,
    cursor?: string,
  ): Promise<Page<{ version: number; createdAt: Date; bytes: number }>> {
    const before = decodeNumberCursor(cursor);
    await this.find(workspaceId, id);
    const qb = this.versions
      .createQueryBuilder('v')
      .select(['v.version AS version', 'v.created_at AS "createdAt"', 'octet_length(v.content) AS bytes'])
      .where('v.script_id = :id', { id });
    if (before !== null) qb.andWhere('v.version < :before', { before });
    const rows = await qb
      .orderBy('v.version', 'DESC')
      .limit(limit + 1)
      .getRawMany<{ version: number; createdAt: Date; bytes: number }>();
    return toPageBy(rows, limit, (r) => encodeNumberCursor(r.version), (r) => ({ ...r, bytes: Number(r.bytes) }));
  }

  async getVersion(
    workspaceId: string,
    id: string,
    version: number,
  ): Promise<{ scriptId: string; version: number; content: string; secrets: string[]; runAs: string | null; createdAt: Date }> {
    await this.find(workspaceId, id);
    const v = await this.versions.findOne({ where: { scriptId: id, version } });
    if (!v) throw notFound('Script version');
    return { scriptId: id, version: v.version, content: v.content, secrets: v.secrets, runAs: v.runAs, createdAt: v.createdAt };
  }
}

/** Declared secret names, checked like secrets' own names (a reserved name could never be defined). */
function checkSecretNames(names: string[]): string[] {
  for (const n of names) {
    const problem = secretNameProblem(n);
    if (problem) throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', `secrets: ${n} ${problem}`);
  }
  return names;
}

function toView(s: Script, v?: { content: string; secrets: string[]; runAs: string | null }): ScriptView {
  return {
    id: s.id,
    name: s.name,
    description: s.description,
    interpreter: s.interpreter,
    timeoutSeconds: s.timeoutSeconds,
    maxOutputBytes: s.maxOutputBytes,
    version: s.currentVersion,
    ...(v === undefined ? {} : { content: v.content, secrets: v.secrets, runAs: v.runAs }),
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}
