import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsString, IsUUID, IsOptional, MaxLength } from 'class-validator';
import { MAX_SECRET_NAME } from '../secret-names.js';

export class CreateSecretDto {
  @ApiProperty({ example: 'DB_PASSWORD', maxLength: MAX_SECRET_NAME, pattern: '^[A-Z][A-Z0-9_]*$' })
  @IsString()
  @MaxLength(MAX_SECRET_NAME)
  name!: string;

  @ApiProperty({ description: 'The value (at most 64 KiB); never returned by any route', writeOnly: true, example: 's3cr3t-deploy-password' })
  @IsString()
  value!: string;

  @ApiPropertyOptional({ description: 'Only for this server (its value wins over the workspace one); omit for every server', format: 'uuid', example: '8a2f6c1e-4b7d-4e0a-9c3b-5d1e2f3a4b6c' })
  @IsOptional()
  @IsUUID()
  serverId?: string;
}

export class UpdateSecretDto {
  @ApiProperty({ description: 'The new value (at most 64 KiB); runs not yet started get it', writeOnly: true, example: 's3cr3t-deploy-password' })
  @IsString()
  value!: string;
}
