import { EXECUTION_STATUSES, type ExecutionStatus, TRIGGERS, type Trigger } from '@app/protocol';
import { ApiProperty } from '@nestjs/swagger';
import { type Assert, DATE_TIME, type Json, type Same } from '../../common/api-doc.js';
import type { Page } from '../../common/pagination.js';
import type { ExecutionView } from '../execution-view.js';
import type { Accepted } from '../executions.service.js';

export class ExecutionViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) scriptId!: string;
  @ApiProperty() scriptName!: string;
  @ApiProperty() scriptVersion!: number;
  @ApiProperty({ format: 'uuid' }) serverId!: string;
  @ApiProperty() serverName!: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid' }) webhookId!: string | null;
  @ApiProperty({ type: String, nullable: true }) webhookName!: string | null;
  @ApiProperty({ enum: TRIGGERS }) trigger!: Trigger;
  @ApiProperty({ enum: EXECUTION_STATUSES }) status!: ExecutionStatus;
  @ApiProperty({ type: Number, nullable: true }) exitCode!: number | null;
  @ApiProperty({ type: String, nullable: true }) signal!: string | null;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
  @ApiProperty(DATE_TIME) queuedAt!: string;
  @ApiProperty({ ...DATE_TIME, nullable: true }) dispatchedAt!: string | null;
  @ApiProperty({ ...DATE_TIME, nullable: true }) startedAt!: string | null;
  @ApiProperty({ ...DATE_TIME, nullable: true }) finishedAt!: string | null;
  @ApiProperty(DATE_TIME) deliverBy!: string;
  @ApiProperty({ type: Number, nullable: true }) durationMs!: number | null;
  @ApiProperty() outputBytes!: number;
  @ApiProperty() outputTruncated!: boolean;
  @ApiProperty({ type: String, nullable: true, enum: ['script_limit', 'workspace_quota'], description: "Why output was cut: the script's maxOutputBytes or the workspace's storage quota" })
  outputTruncatedBy!: 'script_limit' | 'workspace_quota' | null;
  @ApiProperty({ ...DATE_TIME, nullable: true, description: 'When retention removed the output (its routes then answer 410 OUTPUT_EXPIRED)' })
  outputExpiredAt!: string | null;
  @ApiProperty() cancelRequested!: boolean;
}

export class ExecutionPageDto {
  @ApiProperty({ type: [ExecutionViewDto] }) items!: ExecutionViewDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor!: string | null;
}

export class ExecutionLinksDto {
  @ApiProperty() execution!: string;
  @ApiProperty() output!: string;
  @ApiProperty() events!: string;
}

/** The 202 answer of a run, manual or by webhook. */
export class AcceptedDto {
  @ApiProperty({ format: 'uuid' }) executionId!: string;
  @ApiProperty({ enum: EXECUTION_STATUSES }) status!: ExecutionStatus;
  @ApiProperty({ type: ExecutionLinksDto }) links!: ExecutionLinksDto;
}

export type ExecutionDocsMatch = [
  Assert<Same<Json<ExecutionView>, ExecutionViewDto>>,
  Assert<Same<Json<Page<ExecutionView>>, ExecutionPageDto>>,
  Assert<Same<Accepted, AcceptedDto>>,
];
