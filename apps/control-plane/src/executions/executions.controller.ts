import { Body, Controller, Get, Headers, HttpCode, HttpStatus, Param, Post, Query, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
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
  @HttpCode(202)
  @ApiOperation({ summary: "Run the script's current version on a server now (manual run)" })
  @ApiAcceptedResponse({ type: AcceptedDto })
  run(@Auth() auth: AuthContext, @Param('id', uuidPipe) scriptId: string, @Body() dto: RunScriptDto) {
    return this.executions.runManually(auth.workspaceId, scriptId, dto.serverId);
  }

  @Get('executions')
  @ApiOperation({ summary: 'Executions, newest first, filtered' })
  @ApiOkResponse({ type: ExecutionPageDto })
  list(@Auth() auth: AuthContext, @Query() q: ListExecutionsQueryDto) {
    const { limit, cursor, ...filters } = q;
    return this.executions.list(auth.workspaceId, filters, limit, cursor);
  }

  @Get('executions/:id')
  @ApiOkResponse({ type: ExecutionViewDto })
  get(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.executions.get(auth.workspaceId, id);
  }

  @Get('executions/:id/output')
  @ApiProduces('application/octet-stream')
  @ApiOperation({ summary: 'The stored output: the bytes as the script wrote them, in order' })
  async output(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Query() q: OutputQueryDto, @Res() res: Response) {
    await this.executions.withOutput(auth.workspaceId, id);
    await this.feed.writeOutput(res, id, q.stream);
  }

  @Get('executions/:id/events')
  @ApiProduces('text/event-stream')
  @ApiOperation({ summary: 'Server-Sent Events: stored output, then live output and status; Last-Event-ID resumes' })
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
