import { Global, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { AgentLinkModule } from '../agents/agent-link.module.js';
import { ExecutionsModule } from '../executions/executions.module.js';
import { RetentionModule } from '../retention/retention.module.js';
import { LiveConnections } from './live-connections.js';
import { MetricsController } from './metrics.controller.js';
import { DevpilotMetrics } from './metrics.service.js';

/** Prometheus metrics: prom-client's process and event-loop series plus Devpilot's own. */
@Global()
@Module({
  imports: [
    PrometheusModule.register({ path: '/metrics', controller: MetricsController, defaultMetrics: { enabled: true, config: { eventLoopMonitoringPrecision: 10 } } }),
    AgentLinkModule,
    ExecutionsModule,
    RetentionModule,
  ],
  providers: [DevpilotMetrics, LiveConnections],
  exports: [DevpilotMetrics, LiveConnections],
})
export class MetricsModule {}
