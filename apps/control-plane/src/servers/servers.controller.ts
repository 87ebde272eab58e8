import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, BAD_BODY, BAD_QUERY } from '../common/api-doc.js';
import { Auth, type AuthContext } from '../common/auth/auth-context.js';
import { ListQueryDto } from '../common/list-query.dto.js';
import { uuidPipe } from '../common/uuid.pipe.js';
import { CreateServerDto, UpdateServerDto } from './dto/servers.dto.js';
import { ServersService } from './servers.service.js';
import { ServerPageDto, ServerViewDto, ServerWithTokenDto } from './dto/server-view.dto.js';
import { forbiddenOrFull } from '../common/workspace-limits.js';

@ApiTags('servers')
@ApiBearerAuth()
@Controller('servers')
export class ServersController {
  constructor(private readonly servers: ServersService) {}

  @Post()
  @ApiErrors(BAD_BODY, 401, forbiddenOrFull('servers'), { status: 409, code: 'CONFLICT', message: 'A server with this name already exists in the workspace' })
  @ApiOperation({ summary: 'Register a server; the agent token and install command are shown once' })
  @ApiCreatedResponse({ type: ServerWithTokenDto })
  create(@Auth() auth: AuthContext, @Body() dto: CreateServerDto) {
    return this.servers.create(auth.workspaceId, dto.name);
  }

  @Get()
  @ApiErrors(BAD_QUERY, 401)
  @ApiOkResponse({ type: ServerPageDto })
  list(@Auth() auth: AuthContext, @Query() q: ListQueryDto) {
    return this.servers.list(auth.workspaceId, q.limit, q.cursor);
  }

  @Get(':id')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Server not found' })
  @ApiOkResponse({ type: ServerViewDto })
  get(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.servers.get(auth.workspaceId, id);
  }

  @Patch(':id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Server not found' }, { status: 409, code: 'CONFLICT', message: 'A server with this name already exists in the workspace' })
  @ApiOkResponse({ type: ServerViewDto })
  rename(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Body() dto: UpdateServerDto) {
    return this.servers.rename(auth.workspaceId, id, dto.name);
  }

  @Delete(':id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Server not found' })
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted' })
  async delete(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string): Promise<void> {
    await this.servers.delete(auth.workspaceId, id);
  }

  @Post(':id/agent-token')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Server not found' })
  @ApiOperation({ summary: 'Rotate the agent token: the new one is shown once, the old one stops working at once' })
  @ApiCreatedResponse({ type: ServerWithTokenDto })
  rotate(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.servers.rotateToken(auth.workspaceId, id);
  }
}
