import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsString, IsUUID, IsOptional, MaxLength } from 'class-validator';
import { MAX_SECRET_NAME } from '../secret-names.js';

export class CreateSecretDto {
  @ApiProperty({ example: 'DB_PASSWORD', maxLength: MAX_SECRET_NAME, pattern: '^[A-Z][A-Z0-9_]*$' })
  @IsString()
  @MaxLength(MAX_SECRET_NAME)
  name!: string;

  @ApiProperty({ description: 'The value (at most 64 KiB); never returned by any route', writeOnly: true })
  @IsString()
  value!: string;

  @ApiPropertyOptional({ description: 'Only for this server (its value wins over the workspace one); omit for every server' })
  @IsOptional()
  @IsUUID()
  serverId?: string;
}

export class UpdateSecretDto {
  @ApiProperty({ description: 'The new value (at most 64 KiB); runs not yet started get it', writeOnly: true })
  @IsString()
  value!: string;
}
