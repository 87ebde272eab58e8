import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsNotEmpty, IsString, MaxLength } from 'class-validator';
import type { ApiKeyRole } from '../api-key.entity.js';

export class CreateWorkspaceDto {
  @ApiProperty({ example: 'platform-team', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  name!: string;
}

export class CreateApiKeyDto {
  @ApiProperty({ example: 'ci-reader', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  name!: string;

  @ApiProperty({ enum: ['owner', 'viewer'] })
  @IsIn(['owner', 'viewer'], { message: 'role must be one of owner, viewer' })
  role!: ApiKeyRole;
}
