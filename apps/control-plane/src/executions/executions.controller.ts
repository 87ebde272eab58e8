import { Body, Controller, Get, Headers, HttpCode, HttpStatus, Param, Post, Query, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiErrors, BAD_QUERY, type ErrorAnswer } from '../common/api-doc.js';
import type { Response } from 'express';
import { AppException } from '../common/app-exception.js';
import { Auth, type AuthContext } from '../common/auth/auth-context.js';
import { uuidPipe } from '../common/uuid.pipe.js';
import { ListExecutionsQueryDto, OutputQueryDto, RunScriptDto } from './dto/executions.dto.js';
import { LiveConnections } from '../metrics/live-connections.js';
import { KeyConnections } from '../workspaces/key-connections.js';
import { ExecutionFeed } from './execution-feed.js';
import { ExecutionsService } from './executions.service.js';
import { AcceptedDto, ExecutionPageDto, ExecutionViewDto } from './dto/execution-view.dto.js';

const NO_EXECUTION: ErrorAnswer = { status: 404, code: 'NOT_FOUND', message: 'Execution not found' };
const EXPIRED: ErrorAnswer = { status: 410, code: 'OUTPUT_EXPIRED', message: 'The output of this execution was removed by retention on 2026-10-31T04:00:00.000Z' };

@ApiTags('executions')
@ApiBearerAuth()
@Controller()
export class ExecutionsController {
  constructor(
    private readonly executions: ExecutionsService,
    private readonly feed: ExecutionFeed,
    private readonly live: LiveConnections,
    private readonly connections: KeyConnections,
  ) {}

  @Post('scripts/:id/executions')
  @ApiErrors(
    400,
    401,
    403,
    { status: 404, code: 'NOT_FOUND', message: 'Server not found', description: 'NOT_FOUND: no such script or server in this workspace' },
    {
      status: 503,
      code: 'OVERLOADED',
      message: "this server's backlog is full (its bounds: 10000 waiting runs, 268435456 bytes of their kept requests); nothing was queued, retry later",
      description: 'OVERLOADED: the server has DEVPILOT_MAX_QUEUED_PER_SERVER runs waiting; Retry-After says when to retry',
    },
  )
  @HttpCode(202)
  @ApiOperation({ summary: "Run the script's current version on a server now (manual run)" })
  @ApiAcceptedResponse({ type: AcceptedDto })
  run(@Auth() auth: AuthContext, @Param('id', uuidPipe) scriptId: string, @Body() dto: RunScriptDto) {
    return this.executions.runManually(auth.workspaceId, scriptId, dto.serverId);
  }

  @Get('executions')
  @ApiErrors(BAD_QUERY, 401)
  @ApiOperation({ summary: 'Executions, newest first, filtered' })
  @ApiOkResponse({ type: ExecutionPageDto })
  list(@Auth() auth: AuthContext, @Query() q: ListExecutionsQueryDto) {
    const { limit, cursor, ...filters } = q;
    return this.executions.list(auth.workspaceId, filters, limit, cursor);
  }

  @Get('executions/:id')
  @ApiErrors(400, 401, NO_EXECUTION)
  @ApiOkResponse({ type: ExecutionViewDto })
  get(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.executions.get(auth.workspaceId, id);
  }

  @Get('executions/:id/output')
  @ApiErrors(400, 401, NO_EXECUTION, EXPIRED)
  @ApiProduces('application/octet-stream')
  @ApiOperation({ summary: 'The stored output: each stream byte for byte and in order; the two streams interleaved as the agent read them' })
  @ApiOkResponse({ description: 'The bytes, stdout and stderr interleaved as the agent read them (`?stream=` for one stream)' })
  async output(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Query() q: OutputQueryDto, @Res() res: Response) {
    await this.executions.withOutput(auth.workspaceId, id);
    await this.feed.writeOutput(res, id, q.stream);
  }

  @Get('executions/:id/events')
  @ApiErrors(400, 401, NO_EXECUTION, EXPIRED, { status: 429, code: 'TOO_MANY_CONNECTIONS', message: 'Too many open streams and feed connections for this API key' })
  @ApiProduces('text/event-stream')
  @ApiOperation({ summary: 'Server-Sent Events: stored output, then live output and status; Last-Event-ID resumes' })
  @ApiOkResponse({ description: 'text/event-stream: the stored output, then live output and status events; each output event id is its seq' })
  async events(
    @Auth() auth: AuthContext,
    @Param('id', uuidPipe) id: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Query('lastEventId') lastEventIdQuery: string | undefined,
    @Res() res: Response,
  ) {
    const after = parseLastEventId(lastEventId ?? lastEventIdQuery);
    await this.executions.withOutput(auth.workspaceId, id);
    // A stream counts against its key's connections like a feed socket, and ends when the key is deleted.
    const release = await this.connections.hold(auth.keyId, () => res.destroy());
    if (!release) throw new AppException(HttpStatus.TOO_MANY_REQUESTS, 'TOO_MANY_CONNECTIONS', 'Too many open streams and feed connections for this API key');
    this.live.sseStreams++;
    try {
      await this.feed.writeEvents(res, auth.workspaceId, id, after);
    } finally {
      this.live.sseStreams--;
      release();
    }
  }

  @Post('executions/:id/cancel')
  @ApiErrors(400, 401, 403, NO_EXECUTION, { status: 409, code: 'INVALID_STATE', message: 'The execution is already succeeded' })
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel: a queued execution at once, a running one through its agent' })
  @ApiAcceptedResponse({ type: ExecutionViewDto })
  cancel(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.executions.cancel(auth.workspaceId, id);
  }
}

function parseLastEventId(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return -1;
  if (!/^-?\d{1,10}$/.test(value.trim())) {
    throw new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'Last-Event-ID must be an output seq');
  }
  return Math.max(-1, Number(value));
}
