import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsNotEmpty, IsOptional, IsString, MaxLength } from 'class-validator';
import { Nullable, SafeName } from '../../common/validation.js';
import type { ApiKeyRole } from '../api-key.entity.js';

export class CreateWorkspaceDto {
  @ApiProperty({ example: 'platform-team', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @SafeName()
  name!: string;
}

export class CreateApiKeyDto {
  @ApiProperty({ example: 'ci-reader', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @SafeName()
  name!: string;

  @ApiProperty({ enum: ['owner', 'viewer'] })
  @IsIn(['owner', 'viewer'], { message: 'role must be one of owner, viewer' })
  role!: ApiKeyRole;
}

export class UpdateWorkspaceDto {
  @ApiProperty({
    required: false,
    nullable: true,
    example: '7d',
    description: 'How long execution output is kept: 30d, 12h, 90s (a bare number means days); at most the instance value; null: the instance value',
  })
  @IsOptional()
  @Nullable()
  @IsString()
  @MaxLength(16)
  outputRetention?: string | null;

  @ApiProperty({ required: false, nullable: true, example: '7d', description: 'How long delivery records are kept; same rules' })
  @IsOptional()
  @Nullable()
  @IsString()
  @MaxLength(16)
  deliveryRetention?: string | null;
}
