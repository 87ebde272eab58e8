import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

/** A script secret: write-only, encrypted at rest, for the workspace or for one of its servers. */
@Entity('secret')
export class ScriptSecret {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'workspace_id' }) workspaceId!: string;
  /** Null: every server of the workspace; else this server only (its value wins). */
  @Column('uuid', { name: 'server_id', nullable: true }) serverId!: string | null;
  @Column('text') name!: string;
  @Column('bytea', { name: 'value_encrypted', select: false }) valueEncrypted!: Buffer;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
