import type { OutputStream } from '@app/protocol';
import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/** One chunk of output, stored idempotently on (execution, seq). */
@Entity('execution_output')
export class ExecutionOutput {
  @PrimaryColumn('uuid', { name: 'execution_id' }) executionId!: string;
  @PrimaryColumn('int') seq!: number;
  @Column('text') stream!: OutputStream;
  @Column('bytea') data!: Buffer;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
