import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/** One saved content of a script. Never updated: a change is the next version. */
@Entity('script_version')
export class ScriptVersion {
  @PrimaryColumn('uuid', { name: 'script_id' }) scriptId!: string;
  @PrimaryColumn('int') version!: number;
  @Column('text') content!: string;
  /** Names of the secrets this version's runs get as environment variables. */
  @Column('text', { array: true, default: () => "'{}'" }) secrets!: string[];
  /** The user its runs ask the agent for; null: the agent's default script user. */
  @Column('text', { name: 'run_as', nullable: true }) runAs!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
