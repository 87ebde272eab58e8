import { EXECUTION_STATUSES, type ExecutionStatus } from '@app/protocol';
import { ApiProperty } from '@nestjs/swagger';
import type { Assert, Json, Same } from '../../common/api-doc.js';
import type { ErrorBody, ErrorCode } from '../../common/app-exception.js';
import { ExecutionLinksDto } from '../../executions/dto/execution-view.dto.js';
import type { Duplicate } from '../webhook-trigger.service.js';

/** A delivery the webhook accepted before: the first execution; nothing ran again. */
export class DuplicateDto {
  @ApiProperty({ format: 'uuid' }) executionId!: string;
  @ApiProperty({ enum: EXECUTION_STATUSES }) status!: ExecutionStatus;
  @ApiProperty({ type: ExecutionLinksDto }) links!: ExecutionLinksDto;
  @ApiProperty({ enum: [true] }) duplicate!: true;
}

/** The answer to Slack's url_verification request (slack scheme). */
export class SlackChallengeDto {
  @ApiProperty() challenge!: string;
}

/** Every error of the API. */
export class ErrorBodyDto {
  @ApiProperty({ example: 404 }) statusCode!: number;
  @ApiProperty({ example: 'INVALID_TOKEN', description: 'Stable, upper case' }) code!: ErrorCode;
  @ApiProperty({ example: 'Invalid or inactive webhook token' }) message!: string;
  @ApiProperty({ required: false, description: 'For a 500: the id the server logged it under' }) errorId?: string;
}

export type TriggerDocsMatch = [Assert<Same<Json<Duplicate>, DuplicateDto>>, Assert<Same<ErrorBody, ErrorBodyDto>>];
