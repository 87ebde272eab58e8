import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsBoolean, IsNotEmpty, IsOptional, IsString, IsUUID, MaxLength, ValidateIf } from 'class-validator';
import { Nullable, SafeName } from '../../common/validation.js';
import { MAX_ALLOWED_IPS } from '../ip-allowlist.js';


/** May be left out, but not sent as null (these columns always have a value). */
const OptionalNotNull = () => ValidateIf((_, value) => value !== undefined);

export class CreateWebhookDto {
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

  @ApiPropertyOptional({ description: 'Set once; callers then sign the raw body (X-Webhook-Signature). Never returned.', maxLength: 1024 })
  @Nullable()
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(1024)
  hmacSecret?: string | null;
}

/** What a PATCH may change. `token` and `hmacSecret` are refused earlier with IMMUTABLE_FIELD. */
export class UpdateWebhookDto {
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
