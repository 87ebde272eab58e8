import { Controller, Get, Inject, Req, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import type { Request } from 'express';
import { AgentsHealthIndicator } from '../agents/agents.health.js';
import { Public } from '../common/auth/auth-context.js';
import { bearerOf } from '../common/handshake-gates.js';
import { safeEqual } from '../common/tokens.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ApiKeysService } from '../workspaces/api-keys.service.js';

@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly db: TypeOrmHealthIndicator,
    private readonly agents: AgentsHealthIndicator,
    private readonly apiKeys: ApiKeysService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * Readiness: 200 when the database answers and the agents gateway is up, 503 otherwise.
   * Anonymous callers learn only that; the details (what is down, connected agents) need an API
   * key or the metrics token as `Authorization: Bearer`.
   */
  @Get()
  // Documented here rather than by terminus, which adds its schema only where it can require() swagger
  // (not under the ESM test runner), so the document would depend on how it was generated.
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOkResponse({ description: '{status: "ok"}; with an API key or the metrics token: {status, info, error, details}' })
  @ApiServiceUnavailableResponse({ description: 'the database or the agents gateway is down (details only with an API key or the metrics token)' })
  async ready(@Req() req: Request) {
    const detailed = await this.maySeeDetails(req);
    try {
      const result = await this.health.check([() => this.db.pingCheck('database', { timeout: 2000 }), () => this.agents.check('agents')]);
      return detailed ? result : { status: result.status };
    } catch (err) {
      if (detailed || !(err instanceof ServiceUnavailableException)) throw err;
      throw new ServiceUnavailableException({ status: 'error' });
    }
  }

  /** Liveness: the process answers. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }

  private async maySeeDetails(req: Request): Promise<boolean> {
    const secret = bearerOf(req);
    if (!secret) return false;
    if (this.config.metricsToken && safeEqual(secret, this.config.metricsToken)) return true;
    return (await this.apiKeys.authenticate(secret).catch(() => null)) !== null;
  }
}
