import { EXECUTION_STATUSES, type ExecutionStatus } from '@app/protocol';
import { ApiProperty } from '@nestjs/swagger';
import type { Assert, Json, Same } from '../../common/api-doc.js';
import type { ErrorBody, ErrorCode } from '../../common/app-exception.js';
import { ExecutionLinksDto } from '../../executions/dto/execution-view.dto.js';
import type { Finished } from '../../executions/execution-waiter.js';
import type { Duplicate, SkippedAnswer } from '../webhook-trigger.service.js';

/** A delivery the webhook accepted before: the first execution; nothing ran again. */
export class DuplicateDto {
  @ApiProperty({ format: 'uuid' }) executionId!: string;
  @ApiProperty({ enum: EXECUTION_STATUSES }) status!: ExecutionStatus;
  @ApiProperty({ type: ExecutionLinksDto }) links!: ExecutionLinksDto;
  @ApiProperty({ enum: [true] }) duplicate!: true;
}

/** A run that ended while its caller waited (Prefer: wait=N). */
export class FinishedDto {
  @ApiProperty({ format: 'uuid' }) executionId!: string;
  @ApiProperty({ enum: EXECUTION_STATUSES }) status!: ExecutionStatus;
  @ApiProperty({ type: Number, nullable: true }) exitCode!: number | null;
  @ApiProperty({ type: String, nullable: true }) signal!: string | null;
  @ApiProperty({ type: Number, nullable: true }) durationMs!: number | null;
  @ApiProperty({ description: 'The last 64 KiB of the output as text (invalid UTF-8 replaced)' }) output!: string;
  @ApiProperty() outputBytes!: number;
  @ApiProperty() outputTruncated!: boolean;
  @ApiProperty({ type: ExecutionLinksDto }) links!: ExecutionLinksDto;
}

/** A call the webhook's policy answered without running anything. */
export class SkippedDto {
  @ApiProperty({ enum: ['skipped'] }) status!: 'skipped';
  @ApiProperty({ enum: ['ALREADY_RUNNING', 'COOLDOWN'] }) reason!: 'ALREADY_RUNNING' | 'COOLDOWN';
  @ApiProperty({ format: 'uuid', description: 'The run that is queued or running (ALREADY_RUNNING), or the last accepted one (COOLDOWN)' }) executionId!: string;
}

/** The answer to Slack's url_verification request (slack scheme). */
export class SlackChallengeDto {
  @ApiProperty() challenge!: string;
}

/** Every error of the API. */
export class ErrorBodyDto {
  @ApiProperty({ example: 404 }) statusCode!: number;
  @ApiProperty({ type: String, example: 'INVALID_TOKEN', description: 'Stable, upper case' }) code!: ErrorCode;
  @ApiProperty({ example: 'Invalid or inactive webhook token' }) message!: string;
  @ApiProperty({ required: false, description: 'For a 500: the id the server logged it under' }) errorId?: string;
}

export type TriggerDocsMatch = [
  Assert<Same<SkippedAnswer, SkippedDto>>,
  Assert<Same<Json<Finished>, FinishedDto>>,
 Assert<Same<Json<Duplicate>, DuplicateDto>>, Assert<Same<ErrorBody, ErrorBodyDto>>];
