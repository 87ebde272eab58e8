import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn, VirtualColumn } from 'typeorm';
import { bigintAsNumber } from '../scripts/script.entity.js';
import type { WebhookPolicy } from '../executions/execution.repository.js';
import type { SignatureScheme } from './webhook-signature.js';

@Entity('webhook')
export class Webhook {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'workspace_id' }) workspaceId!: string;
  @Column('uuid', { name: 'script_id' }) scriptId!: string;
  @Column('uuid', { name: 'server_id' }) serverId!: string;
  @Column('text') name!: string;
  /** AES-256-GCM under the master key; the owner can read the token back. */
  @Column('bytea', { name: 'token_encrypted', select: false }) tokenEncrypted!: Buffer;
  /** SHA-256 of the token, unique: the trigger looks a call up by it. */
  @Column('bytea', { name: 'token_hash', select: false }) tokenHash!: Buffer;
  @Column('boolean', { default: true }) active!: boolean;
  @Column('text', { name: 'allowed_ips', array: true, default: () => "'{}'" }) allowedIps!: string[];
  @Column('bytea', { name: 'hmac_secret_encrypted', nullable: true, select: false }) hmacSecretEncrypted!: Buffer | null;
  @Column('boolean', { name: 'hmac_enabled', default: false }) hmacEnabled!: boolean;
  /** How callers prove they hold the secret; set at creation with it, never changed. */
  @Column('text', { name: 'signature_scheme', default: 'devpilot' }) signatureScheme!: SignatureScheme;
  @Column('text', { default: 'parallel' }) concurrency!: WebhookPolicy['concurrency'];
  @Column('integer', { name: 'cooldown_seconds', default: 0 }) cooldownSeconds!: number;
  /** Its runs get the sender's request (a file with the raw body, the event, the delivery id). */
  @Column('boolean', { name: 'pass_payload', default: false }) passPayload!: boolean;
  /** The accepted calls: the row's own count (moved by nodes of the previous release) plus its tally's shards. */
  @VirtualColumn({
    type: 'bigint',
    transformer: bigintAsNumber,
    query: (w) => `SELECT ${w}.call_count + coalesce(sum(t.calls), 0) FROM webhook_call_tally t WHERE t.webhook_id = ${w}.id`,
  })
  callCount!: number;
  @VirtualColumn({
    type: 'timestamptz',
    query: (w) => `SELECT greatest(${w}.last_called_at, max(t.last_called_at)) FROM webhook_call_tally t WHERE t.webhook_id = ${w}.id`,
  })
  lastCalledAt!: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
