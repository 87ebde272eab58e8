import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, BAD_BODY, BAD_QUERY } from '../common/api-doc.js';
import { AppException } from '../common/app-exception.js';
import { Auth, type AuthContext } from '../common/auth/auth-context.js';
import { ListQueryDto } from '../common/list-query.dto.js';
import { uuidPipe } from '../common/uuid.pipe.js';
import { CreateScriptDto, UpdateScriptDto } from './dto/scripts.dto.js';
import { ScriptsService } from './scripts.service.js';
import { ScriptPageDto, ScriptVersionDto, ScriptVersionPageDto, ScriptViewDto } from './dto/script-view.dto.js';
import { forbiddenOrFull } from '../common/workspace-limits.js';

/** A version number as stored (a PostgreSQL integer): anything else is a 400, never a database error. */
// eslint-disable-next-line no-useless-assignment -- used by a parameter decorator below, which the rule does not see
const versionPipe = {
  transform(value: unknown): number {
    // The global pipe may have turned the text into a number already (the parameter is typed number).
    const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,10}$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 2_147_483_647) {
      throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'version must be an integer from 1 to 2147483647');
    }
    return n;
  },
};

@ApiTags('scripts')
@ApiBearerAuth()
@Controller('scripts')
export class ScriptsController {
  constructor(private readonly scripts: ScriptsService) {}

  @Post()
  @ApiErrors(BAD_BODY, 401, forbiddenOrFull('scripts'))
  @ApiOperation({ summary: 'Create a script (version 1)' })
  @ApiCreatedResponse({ type: ScriptViewDto })
  create(@Auth() auth: AuthContext, @Body() dto: CreateScriptDto) {
    return this.scripts.create(auth.workspaceId, dto);
  }

  @Get()
  @ApiErrors(BAD_QUERY, 401)
  @ApiOkResponse({ type: ScriptPageDto })
  list(@Auth() auth: AuthContext, @Query() q: ListQueryDto) {
    return this.scripts.list(auth.workspaceId, q.limit, q.cursor);
  }

  @Get(':id')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Script not found' })
  @ApiOkResponse({ type: ScriptViewDto })
  get(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.scripts.get(auth.workspaceId, id);
  }

  @Patch(':id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Script not found' })
  @ApiOperation({ summary: 'Change a script; a changed content creates the next version' })
  @ApiOkResponse({ type: ScriptViewDto })
  update(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Body() dto: UpdateScriptDto) {
    return this.scripts.update(auth.workspaceId, id, dto);
  }

  @Delete(':id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Script not found' })
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted' })
  async delete(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string): Promise<void> {
    await this.scripts.delete(auth.workspaceId, id);
  }

  @Get(':id/versions')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Script not found' })
  @ApiOperation({ summary: "The script's versions, newest first, a page at a time" })
  @ApiOkResponse({ type: ScriptVersionPageDto })
  versions(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Query() q: ListQueryDto) {
    return this.scripts.listVersions(auth.workspaceId, id, q.limit, q.cursor);
  }

  @Get(':id/versions/:version')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Script not found' })
  @ApiOkResponse({ type: ScriptVersionDto })
  version(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Param('version', versionPipe) version: number) {
    return this.scripts.getVersion(auth.workspaceId, id, version);
  }
}
