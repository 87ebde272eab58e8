import { ApiProperty } from '@nestjs/swagger';
import { type Assert, type Json, type Same } from '../../common/api-doc.js';
import type { ApiKeyRole } from '../api-key.entity.js';
import type { WorkspacesController } from '../workspaces.controller.js';

export class WorkspaceRefDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
}

/** Who the API key is: its workspace and role. */
export class MeDto {
  @ApiProperty({ type: WorkspaceRefDto }) workspace!: WorkspaceRefDto;
  @ApiProperty({ enum: ['owner', 'viewer'] }) role!: ApiKeyRole;
  @ApiProperty({ description: 'The instance admin key (may create workspaces)' }) isAdmin!: boolean;
  @ApiProperty({ description: 'The id of the key itself' }) keyId!: string;
}

export type MeDocsMatch = Assert<Same<Json<Awaited<ReturnType<WorkspacesController['me']>>>, MeDto>>;
