import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** One call of the trigger, accepted or rejected, kept so an owner can debug a caller. */
@Entity('webhook_delivery')
export class WebhookDelivery {
  @PrimaryGeneratedColumn('uuid') id!: string;
  /** Null when the token matched no webhook. */
  @Column('uuid', { name: 'webhook_id', nullable: true }) webhookId!: string | null;
  @Column('uuid', { name: 'workspace_id', nullable: true }) workspaceId!: string | null;
  @Column('text', { name: 'source_ip' }) sourceIp!: string;
  @Column('int', { name: 'status_code' }) statusCode!: number;
  /** ACCEPTED or the error code answered. */
  @Column('text') code!: string;
  @Column('text') reason!: string;
  @Column('uuid', { name: 'execution_id', nullable: true }) executionId!: string | null;
  @Column('text', { name: 'user_agent', nullable: true }) userAgent!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
