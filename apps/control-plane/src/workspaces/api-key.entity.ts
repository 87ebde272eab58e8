import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type ApiKeyRole = 'owner' | 'viewer';

@Entity('api_key')
export class ApiKey {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'workspace_id' }) workspaceId!: string;
  @Column('text') name!: string;
  @Column('text') role!: ApiKeyRole;
  /** SHA-256 of the key: the key itself is shown once and never stored. */
  @Column('bytea', { name: 'key_hash', select: false }) keyHash!: Buffer;
  /** The first characters of the key, so a person can tell keys apart. */
  @Column('text', { name: 'key_prefix' }) keyPrefix!: string;
  /** The bootstrap key: the instance admin, who alone creates workspaces. */
  @Column('boolean', { name: 'is_admin', default: false }) isAdmin!: boolean;
  @Column('timestamptz', { name: 'last_used_at', nullable: true }) lastUsedAt!: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
