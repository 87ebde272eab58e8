import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext } from '../common/auth/auth-context.js';
import { ListQueryDto } from '../common/list-query.dto.js';
import { uuidPipe } from '../common/uuid.pipe.js';
import { CreateServerDto, UpdateServerDto } from './dto/servers.dto.js';
import { ServersService } from './servers.service.js';
import { ServerPageDto, ServerViewDto, ServerWithTokenDto } from './dto/server-view.dto.js';

@ApiTags('servers')
@ApiBearerAuth()
@Controller('servers')
export class ServersController {
  constructor(private readonly servers: ServersService) {}

  @Post()
  @ApiOperation({ summary: 'Register a server; the agent token and install command are shown once' })
  @ApiCreatedResponse({ type: ServerWithTokenDto })
  create(@Auth() auth: AuthContext, @Body() dto: CreateServerDto) {
    return this.servers.create(auth.workspaceId, dto.name);
  }

  @Get()
  @ApiOkResponse({ type: ServerPageDto })
  list(@Auth() auth: AuthContext, @Query() q: ListQueryDto) {
    return this.servers.list(auth.workspaceId, q.limit, q.cursor);
  }

  @Get(':id')
  @ApiOkResponse({ type: ServerViewDto })
  get(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.servers.get(auth.workspaceId, id);
  }

  @Patch(':id')
  @ApiOkResponse({ type: ServerViewDto })
  rename(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Body() dto: UpdateServerDto) {
    return this.servers.rename(auth.workspaceId, id, dto.name);
  }

  @Delete(':id')
  @HttpCode(204)
  async delete(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string): Promise<void> {
    await this.servers.delete(auth.workspaceId, id);
  }

  @Post(':id/agent-token')
  @ApiOperation({ summary: 'Rotate the agent token: the new one is shown once, the old one stops working at once' })
  @ApiCreatedResponse({ type: ServerWithTokenDto })
  rotate(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.servers.rotateToken(auth.workspaceId, id);
  }
}
