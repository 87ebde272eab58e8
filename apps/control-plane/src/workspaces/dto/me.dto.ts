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

/** The key's workspace: retention in force, output stored and the quota. */
export class WorkspaceSettingsDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ example: '30d', description: "Output retention in force (the workspace's own when shorter than the instance's)" }) outputRetention!: string;
  @ApiProperty() outputRetentionSeconds!: number;
  @ApiProperty({ example: '14d' }) deliveryRetention!: string;
  @ApiProperty() deliveryRetentionSeconds!: number;
  @ApiProperty({ example: '30d', description: 'The instance value: the longest a workspace may keep output' }) instanceOutputRetention!: string;
  @ApiProperty({ example: '14d' }) instanceDeliveryRetention!: string;
  @ApiProperty({ description: 'Output bytes stored for the workspace now' }) outputBytes!: number;
  @ApiProperty({ description: 'The quota of stored output bytes per workspace' }) outputQuotaBytes!: number;
}

export type WorkspaceSettingsDocsMatch = Assert<Same<Json<Awaited<ReturnType<WorkspacesController['current']>>>, WorkspaceSettingsDto>>;
