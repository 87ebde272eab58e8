import type { Interpreter } from '@app/protocol';
import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

/** bigint columns come back from pg as strings; these fit in a JS number. */
export const bigintAsNumber = { to: (v: number) => v, from: (v: string | null) => (v === null ? null : Number(v)) };

@Entity('script')
export class Script {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'workspace_id' }) workspaceId!: string;
  @Column('text') name!: string;
  @Column('text', { default: '' }) description!: string;
  @Column('text', { default: 'bash' }) interpreter!: Interpreter;
  @Column('int', { name: 'timeout_seconds', default: 300 }) timeoutSeconds!: number;
  @Column('bigint', { name: 'max_output_bytes', default: 64 * 1024 * 1024, transformer: bigintAsNumber })
  maxOutputBytes!: number;
  @Column('int', { name: 'current_version', default: 1 }) currentVersion!: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
