import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { type Assert, DATE_TIME, type Json, type Same } from '../../common/api-doc.js';
import type { Page } from '../../common/pagination.js';
import type { DeliveryView } from '../delivery-log.service.js';
import type { WebhookExamples } from '../webhook-examples.js';
import type { WebhookView } from '../webhooks.service.js';
import { SIGNATURE_SCHEMES, type SignatureScheme } from '../webhook-signature.js';
import type { WebhookPolicy } from '../../executions/execution.repository.js';
import { CONCURRENCY_POLICIES } from './webhooks.dto.js';

export class WebhookExamplesDto {
  @ApiProperty({ description: 'A curl command (with a secret: a small shell script that signs with openssl)' }) curl!: string;
  @ApiProperty({ description: 'A Node ES module that (signs and) sends' }) node!: string;
  @ApiProperty({ description: 'A Python 3 script that (signs and) sends' }) python!: string;
}

export class WebhookViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'deploy from CI' }) name!: string;
  @ApiProperty({ format: 'uuid' }) scriptId!: string;
  @ApiProperty({ format: 'uuid' }) serverId!: string;
  @ApiProperty({ type: String, nullable: true, description: 'The token for an owner key; null for a viewer key', example: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' }) token!: string | null;
  @ApiProperty() active!: boolean;
  @ApiProperty({ type: [String] }) allowedIps!: string[];
  @ApiProperty() hmacEnabled!: boolean;
  @ApiProperty({ enum: SIGNATURE_SCHEMES }) signatureScheme!: SignatureScheme;
  @ApiProperty({ enum: CONCURRENCY_POLICIES }) concurrency!: WebhookPolicy['concurrency'];
  @ApiProperty() cooldownSeconds!: number;
  @ApiProperty({ description: 'Its runs get the request (DEVPILOT_PAYLOAD_FILE and the variables beside it)' }) passPayload!: boolean;
  @ApiPropertyOptional({ description: 'Only in the 201, and only when the secret was generated: shown this once' }) hmacSecret?: string;
  @ApiProperty() callCount!: number;
  @ApiProperty({ ...DATE_TIME, nullable: true }) lastCalledAt!: string | null;
  @ApiProperty(DATE_TIME) createdAt!: string;
  @ApiProperty(DATE_TIME) updatedAt!: string;
  @ApiProperty({ type: WebhookExamplesDto }) examples!: WebhookExamplesDto;
}

export class WebhookPageDto {
  @ApiProperty({ type: [WebhookViewDto] }) items!: WebhookViewDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor!: string | null;
}

/** One call of the trigger, accepted or rejected. */
export class DeliveryViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty(DATE_TIME) createdAt!: string;
  @ApiProperty() sourceIp!: string;
  @ApiProperty() statusCode!: number;
  @ApiProperty({ description: 'ACCEPTED or the error code answered' }) code!: string;
  @ApiProperty() reason!: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid' }) executionId!: string | null;
  @ApiProperty({ type: String, nullable: true }) userAgent!: string | null;
}

export class DeliveryPageDto {
  @ApiProperty({ type: [DeliveryViewDto] }) items!: DeliveryViewDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor!: string | null;
}

export type WebhookDocsMatch = [
  Assert<Same<WebhookExamples, WebhookExamplesDto>>,
  Assert<Same<Json<WebhookView>, WebhookViewDto>>,
  Assert<Same<Json<Page<WebhookView>>, WebhookPageDto>>,
  Assert<Same<Json<Page<DeliveryView>>, DeliveryPageDto>>,
];
