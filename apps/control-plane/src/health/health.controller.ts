import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { AgentsHealthIndicator } from '../agents/agents.health.js';
import { Public } from '../common/auth/auth-context.js';

@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly agents: AgentsHealthIndicator,
  ) {}

  /** Readiness: 200 when the database answers and the agents gateway is up, 503 otherwise. */
  @Get()
  // Documented here rather than by terminus, which adds its schema only where it can require() swagger
  // (not under the ESM test runner), so the document would depend on how it was generated.
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOkResponse({ description: '{status: "ok", info, error, details}: the database answers and the agents gateway is up' })
  @ApiServiceUnavailableResponse({ description: '{status: "error", info, error, details}: one of them is down' })
  ready() {
    return this.health.check([() => this.db.pingCheck('database', { timeout: 2000 }), () => this.agents.check('agents')]);
  }

  /** Liveness: the process answers. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }
}
