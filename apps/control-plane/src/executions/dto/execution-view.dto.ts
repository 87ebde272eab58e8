import { EXECUTION_STATUSES, type ExecutionStatus, TRIGGERS, type Trigger } from '@app/protocol';
import { ApiProperty } from '@nestjs/swagger';
import { type Assert, DATE_TIME, type Json, type Same } from '../../common/api-doc.js';
import type { Page } from '../../common/pagination.js';
import type { ExecutionView } from '../execution-view.js';
import type { Accepted } from '../executions.service.js';

export class ExecutionViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) scriptId!: string;
  @ApiProperty({ example: 'deploy' }) scriptName!: string;
  @ApiProperty() scriptVersion!: number;
  @ApiProperty({ format: 'uuid' }) serverId!: string;
  @ApiProperty({ example: 'web-01' }) serverName!: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid' }) webhookId!: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'deploy from CI' }) webhookName!: string | null;
  @ApiProperty({ enum: TRIGGERS }) trigger!: Trigger;
  @ApiProperty({ enum: EXECUTION_STATUSES }) status!: ExecutionStatus;
  @ApiProperty({ type: Number, nullable: true }) exitCode!: number | null;
  @ApiProperty({ type: String, nullable: true, example: 'SIGTERM', description: 'The signal that ended the process, when exitCode is null' }) signal!: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'cancelled before it started', description: 'Why the run ended so, for every terminal status other than a plain exit' }) error!: string | null;
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
  @ApiProperty({ example: '/api/v1/executions/0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a' }) execution!: string;
  @ApiProperty({ example: '/api/v1/executions/0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a/output' }) output!: string;
  @ApiProperty({ example: '/api/v1/executions/0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a/events' }) events!: string;
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
