import { Controller, Get, Headers, HttpStatus, Inject, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { register } from 'prom-client';
import { AppException } from '../common/app-exception.js';
import { Public } from '../common/auth/auth-context.js';
import { safeEqual } from '../common/tokens.js';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';

/**
 * GET /metrics in the Prometheus text format, off unless DEVPILOT_METRICS_TOKEN is set, and then
 * only with `Authorization: Bearer <that token>` (compared in constant time): the series carry no
 * tenant names, but an anonymous caller has no business reading them either.
 */
@ApiExcludeController()
@Public()
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  @Get()
  async index(@Res({ passthrough: true }) response: Response, @Headers('authorization') authorization?: string): Promise<string> {
    const token = this.config.metricsToken;
    if (token === null) throw new AppException(HttpStatus.NOT_FOUND, 'NOT_FOUND', 'Metrics are off (set DEVPILOT_METRICS_TOKEN)');
    const given = /^Bearer\s+(.+)$/i.exec(authorization ?? '')?.[1]?.trim();
    if (!given || !safeEqual(given, token)) {
      response.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
      throw new AppException(HttpStatus.UNAUTHORIZED, 'UNAUTHORIZED', 'Metrics need Authorization: Bearer <DEVPILOT_METRICS_TOKEN>');
    }
    response.setHeader('Content-Type', register.contentType);
    return register.metrics();
  }
}
