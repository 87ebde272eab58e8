import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, BAD_BODY } from '../common/api-doc.js';
import { AdminOnly, Auth, type AuthContext } from '../common/auth/auth-context.js';
import { uuidPipe } from '../common/uuid.pipe.js';
import { ApiKeysService } from './api-keys.service.js';
import { CreateApiKeyDto, CreateWorkspaceDto, UpdateWorkspaceDto } from './dto/workspaces.dto.js';
import { WorkspacesService } from './workspaces.service.js';
import { MeDto, WorkspaceSettingsDto } from './dto/me.dto.js';

@ApiTags('workspaces')
@ApiBearerAuth()
@Controller()
export class WorkspacesController {
  constructor(
    private readonly workspaces: WorkspacesService,
    private readonly apiKeys: ApiKeysService,
  ) {}

  @Get('me')
  @ApiErrors(401)
  @ApiOperation({ summary: "The key's workspace and role" })
  @ApiOkResponse({ type: MeDto })
  async me(@Auth() auth: AuthContext) {
    const ws = await this.workspaces.get(auth.workspaceId);
    return { workspace: { id: ws.id, name: ws.name }, role: auth.role, isAdmin: auth.isAdmin, keyId: auth.keyId };
  }

  @Post('workspaces')
  @ApiErrors(BAD_BODY, 401, { status: 403, code: 'FORBIDDEN', message: 'Only the instance admin key may do this' })
  @AdminOnly()
  @ApiOperation({ summary: 'A new workspace and its first owner key (returned once). Instance admin only.' })
  @ApiCreatedResponse({ description: '{id, name, apiKey}: the owner key is in this answer only' })
  create(@Body() dto: CreateWorkspaceDto) {
    return this.workspaces.create(dto.name);
  }

  @Get('workspaces/current')
  @ApiErrors(401)
  @ApiOkResponse({ type: WorkspaceSettingsDto })
  @ApiOperation({ summary: "The key's workspace: retention in force, output stored and the quota" })
  current(@Auth() auth: AuthContext) {
    return this.workspaces.settings(auth.workspaceId);
  }

  @Patch('workspaces/current')
  @ApiErrors(BAD_BODY, 401, 403)
  @ApiOkResponse({ type: WorkspaceSettingsDto })
  @ApiOperation({ summary: 'Shorten (never past the instance values) how long output and delivery records are kept; null: the instance value' })
  update(@Auth() auth: AuthContext, @Body() dto: UpdateWorkspaceDto) {
    return this.workspaces.updateRetention(auth.workspaceId, dto);
  }

  @Post('api-keys')
  @ApiErrors(BAD_BODY, 401, 403)
  @ApiOperation({ summary: 'A new API key, returned once' })
  @ApiCreatedResponse({ description: '{id, name, role, key, createdAt}: the key is in this answer only' })
  async createKey(@Auth() auth: AuthContext, @Body() dto: CreateApiKeyDto) {
    const { row, key } = await this.apiKeys.create(auth.workspaceId, dto.name, dto.role);
    return { id: row.id, name: row.name, role: row.role, key, createdAt: row.createdAt };
  }

  @Get('api-keys')
  @ApiErrors(401)
  @ApiOkResponse({ description: '{items: [{id, name, role, createdAt, lastUsedAt}], nextCursor: null}: never the keys themselves' })
  async listKeys(@Auth() auth: AuthContext) {
    return { items: await this.apiKeys.list(auth.workspaceId), nextCursor: null };
  }

  @Get('api-keys/:id')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'API key not found' })
  @ApiOkResponse({ description: '{id, name, role, createdAt, lastUsedAt}' })
  getKey(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.apiKeys.get(auth.workspaceId, id);
  }

  @Delete('api-keys/:id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'API key not found' }, { status: 409, code: 'CONFLICT', message: 'A key cannot delete itself; use another owner key' })
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted: the key stops working and its open streams end' })
  async deleteKey(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string): Promise<void> {
    await this.apiKeys.delete(auth, id);
  }
}
