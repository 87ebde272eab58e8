import { bigintAsNumber } from '../scripts/script.entity.js';
import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

@Entity('workspace')
export class Workspace {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') name!: string;
  /** This workspace's own (shorter) retention, in seconds; null: the instance's. */
  @Column('int', { name: 'output_retention_seconds', nullable: true }) outputRetentionSeconds!: number | null;
  @Column('int', { name: 'delivery_retention_seconds', nullable: true }) deliveryRetentionSeconds!: number | null;
  /** Output bytes stored now (what the quota counts). */
  @Column('bigint', { name: 'output_bytes', default: 0, transformer: bigintAsNumber }) outputBytes!: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
