import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

export type ServerStatus = 'online' | 'offline';

@Entity('server')
export class Server {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'workspace_id' }) workspaceId!: string;
  @Column('text') name!: string;
  /** SHA-256 of the agent token, which is shown once and never stored. */
  @Column('bytea', { name: 'agent_token_hash', select: false }) agentTokenHash!: Buffer;
  @Column('text', { default: 'offline' }) status!: ServerStatus;
  @Column('timestamptz', { name: 'last_seen_at', nullable: true }) lastSeenAt!: Date | null;
  @Column('text', { nullable: true }) hostname!: string | null;
  @Column('text', { nullable: true }) platform!: string | null;
  @Column('text', { name: 'agent_version', nullable: true }) agentVersion!: string | null;
  /** Protocol version of the agent last connected for this server. */
  @Column('int', { name: 'agent_protocol_version', nullable: true }) agentProtocolVersion!: number | null;
  /** What its agent said in its last handshake: who runs scripts, whether it can switch users, which runAs it allows. */
  @Column('text', { name: 'runs_scripts_as', nullable: true }) runsScriptsAs!: string | null;
  @Column('boolean', { name: 'switches_users', nullable: true }) switchesUsers!: boolean | null;
  @Column('text', { name: 'allow_run_as', array: true, nullable: true }) allowRunAs!: string[] | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
