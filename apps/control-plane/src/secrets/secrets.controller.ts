import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, BAD_BODY, BAD_QUERY } from '../common/api-doc.js';
import { SecretPageDto, SecretViewDto } from './dto/secret-view.dto.js';
import { Auth, type AuthContext } from '../common/auth/auth-context.js';
import { ListQueryDto } from '../common/list-query.dto.js';
import { uuidPipe } from '../common/uuid.pipe.js';
import { CreateSecretDto, UpdateSecretDto } from './dto/secrets.dto.js';
import { ScriptSecretsService } from './secrets.service.js';

@ApiTags('secrets')
@ApiBearerAuth()
@Controller('secrets')
export class SecretsController {
  constructor(private readonly secrets: ScriptSecretsService) {}

  @Post()
  @ApiErrors(BAD_BODY, 401, 403, { status: 409, code: 'CONFLICT', message: 'A secret named DEPLOY_TOKEN already exists in this workspace' })
  @ApiCreatedResponse({ type: SecretViewDto })
  @ApiOperation({ summary: 'A script secret for the workspace or one server; the value is never returned' })
  create(@Auth() auth: AuthContext, @Body() dto: CreateSecretDto) {
    return this.secrets.create(auth.workspaceId, dto);
  }

  @Get()
  @ApiErrors(BAD_QUERY, 401)
  @ApiOkResponse({ type: SecretPageDto })
  @ApiOperation({ summary: 'Secret names, scopes and dates (never values)' })
  list(@Auth() auth: AuthContext, @Query() q: ListQueryDto) {
    return this.secrets.list(auth.workspaceId, q.limit, q.cursor);
  }

  @Get(':id')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Secret not found' })
  @ApiOkResponse({ type: SecretViewDto })
  get(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.secrets.get(auth.workspaceId, id);
  }

  @Put(':id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Secret not found' })
  @ApiOkResponse({ type: SecretViewDto })
  @ApiOperation({ summary: 'A new value (runs not yet started get it)' })
  update(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Body() dto: UpdateSecretDto) {
    return this.secrets.update(auth.workspaceId, id, dto.value);
  }

  @Delete(':id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Secret not found' })
  @HttpCode(204)
  @ApiNoContentResponse()
  async delete(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string): Promise<void> {
    await this.secrets.delete(auth.workspaceId, id);
  }
}
