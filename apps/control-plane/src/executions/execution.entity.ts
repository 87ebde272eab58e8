import type { ExecutionStatus, Trigger } from '@app/protocol';
import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { bigintAsNumber } from '../scripts/script.entity.js';

@Entity('execution')
export class Execution {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'workspace_id' }) workspaceId!: string;
  @Column('uuid', { name: 'script_id' }) scriptId!: string;
  @Column('int', { name: 'script_version' }) scriptVersion!: number;
  @Column('uuid', { name: 'server_id' }) serverId!: string;
  @Column('uuid', { name: 'webhook_id', nullable: true }) webhookId!: string | null;
  @Column('text') trigger!: Trigger;
  @Column('text', { default: 'queued' }) status!: ExecutionStatus;
  @Column('int', { name: 'exit_code', nullable: true }) exitCode!: number | null;
  @Column('text', { nullable: true }) signal!: string | null;
  /** Why it could not run or finish (missing interpreter, agent lost it, ...). */
  @Column('text', { nullable: true }) error!: string | null;
  @CreateDateColumn({ name: 'queued_at', type: 'timestamptz' }) queuedAt!: Date;
  @Column('timestamptz', { name: 'deliver_by' }) deliverBy!: Date;
  @Column('timestamptz', { name: 'dispatched_at', nullable: true }) dispatchedAt!: Date | null;
  @Column('timestamptz', { name: 'started_at', nullable: true }) startedAt!: Date | null;
  @Column('timestamptz', { name: 'finished_at', nullable: true }) finishedAt!: Date | null;
  @Column('bigint', { name: 'output_bytes', default: 0, transformer: bigintAsNumber }) outputBytes!: number;
  @Column('boolean', { name: 'output_truncated', default: false }) outputTruncated!: boolean;
  /** Why the output was cut: the script's maxOutputBytes or the workspace's quota. */
  @Column('text', { name: 'output_truncated_by', nullable: true }) outputTruncatedBy!: 'script_limit' | 'workspace_quota' | null;
  /** When retention removed the output (the row, its status and byte count stay). */
  @Column('timestamptz', { name: 'output_expired_at', nullable: true }) outputExpiredAt!: Date | null;
  /** The agent's finished report, held until every chunk up to its lastSeq is stored. */
  @Column('jsonb', { name: 'finish_report', nullable: true }) finishReport!: Record<string, unknown> | null;
  /** When that report was last held waiting for output (see ExecutionRepository.giveUpIncomplete). */
  @Column('timestamptz', { name: 'finish_held_at', nullable: true }) finishHeldAt!: Date | null;
  @Column('boolean', { name: 'cancel_requested', default: false }) cancelRequested!: boolean;
  /** The script's timeout when the run was created (null on rows older than the column: the script's). */
  @Column('int', { name: 'timeout_seconds', nullable: true }) timeoutSeconds!: number | null;
  /** When the agent accepted the start into its queue (protocol v2: `running` waits for the spawn). */
  @Column('timestamptz', { name: 'accepted_at', nullable: true }) acceptedAt!: Date | null;
}
