import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsBoolean, IsIn, IsInt, IsNotEmpty, IsOptional, IsString, IsUUID, Max, MaxLength, Min, ValidateIf } from 'class-validator';
import { Nullable, SafeName } from '../../common/validation.js';
import { MAX_ALLOWED_IPS } from '../ip-allowlist.js';
import { SIGNATURE_SCHEMES, type SignatureScheme } from '../webhook-signature.js';
import type { WebhookPolicy } from '../../executions/execution.repository.js';

export const CONCURRENCY_POLICIES = ['parallel', 'queue', 'skip', 'replace'] as const satisfies readonly WebhookPolicy['concurrency'][];


/** May be left out, but not sent as null (these columns always have a value). */
const OptionalNotNull = () => ValidateIf((_, value) => value !== undefined);

/**
 * How a webhook's calls run, on create and PATCH alike. Left out on create: parallel, no cooldown,
 * no request passed; left out on PATCH: unchanged.
 */
class WebhookRunSettings {
  @ApiPropertyOptional({
    enum: CONCURRENCY_POLICIES,
    description:
      'parallel when created. queue: one run at a time, in the order calls were accepted (the others wait, queued); ' +
      'skip: 200 skipped while a run is queued or running; replace: cancel it and run the new one',
  })
  @OptionalNotNull()
  @IsIn(CONCURRENCY_POLICIES, { message: `concurrency must be one of ${CONCURRENCY_POLICIES.join(', ')}` })
  concurrency?: WebhookPolicy['concurrency'];

  @ApiPropertyOptional({ minimum: 0, maximum: 86400, description: '0 when created. A call within this many seconds of the last accepted one: 200 skipped (COOLDOWN)' })
  @OptionalNotNull()
  @IsInt()
  @Min(0)
  @Max(86400)
  cooldownSeconds?: number;

  @ApiPropertyOptional({
    description:
      'false when created. Give its runs the request: DEVPILOT_PAYLOAD_FILE (a 0600 file with the raw body, removed after the run), ' +
      'DEVPILOT_EVENT (X-GitHub-Event or X-Gitlab-Event), DEVPILOT_DELIVERY_ID, DEVPILOT_CONTENT_TYPE',
  })
  @OptionalNotNull()
  @IsBoolean()
  passPayload?: boolean;
}

export class CreateWebhookDto extends WebhookRunSettings {
  @ApiProperty({ example: 'deploy from CI', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @SafeName()
  name!: string;

  @ApiProperty({ format: 'uuid', description: 'The server whose agent runs the script' })
  @IsUUID('all', { message: 'serverId must be a UUID' })
  serverId!: string;

  @ApiPropertyOptional({ type: [String], example: ['203.0.113.7', '10.0.0.0/8', '2001:db8::/32'], description: 'Empty: any address' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(MAX_ALLOWED_IPS)
  @IsString({ each: true })
  allowedIps?: string[];

  @ApiPropertyOptional({
    description:
      'Set once, never returned (unless generated: then once, in this answer). Required for `slack` (its signing secret); ' +
      '`github`, `gitlab` and `standard-webhooks` generate one when none is given (`whsec_...` for standard-webhooks).',
    maxLength: 1024,
  })
  @Nullable()
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(1024)
  hmacSecret?: string | null;

  @ApiPropertyOptional({ enum: SIGNATURE_SCHEMES, default: 'devpilot', description: 'How callers sign (set once, like the secret)' })
  @OptionalNotNull()
  @IsIn(SIGNATURE_SCHEMES, { message: `signatureScheme must be one of ${SIGNATURE_SCHEMES.join(', ')}` })
  signatureScheme?: SignatureScheme;
}

/** What a PATCH may change. `token`, `hmacSecret` and `signatureScheme` are refused earlier with IMMUTABLE_FIELD. */
export class UpdateWebhookDto extends WebhookRunSettings {
  @ApiPropertyOptional({ maxLength: 100 })
  @OptionalNotNull()
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @SafeName()
  name?: string;

  @ApiPropertyOptional({ description: 'false pauses the webhook: its token answers 404 until re-enabled' })
  @OptionalNotNull()
  @IsBoolean()
  active?: boolean;

  @ApiPropertyOptional({ type: [String] })
  @OptionalNotNull()
  @IsArray()
  @ArrayMaxSize(MAX_ALLOWED_IPS)
  @IsString({ each: true })
  allowedIps?: string[];
}
