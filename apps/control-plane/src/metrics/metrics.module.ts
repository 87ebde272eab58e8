import { Global, Module } from '@nestjs/common';
import { collectDefaultMetrics, register } from 'prom-client';
import { AgentLinkModule } from '../agents/agent-link.module.js';
import { ExecutionsModule } from '../executions/executions.module.js';
import { RetentionModule } from '../retention/retention.module.js';
import { LiveConnections } from './live-connections.js';
import { MetricsController } from './metrics.controller.js';
import { DevpilotMetrics } from './metrics.service.js';

// prom-client's process and event-loop series, once per process (the registry is the process's).
if (!register.getSingleMetric('process_cpu_seconds_total')) collectDefaultMetrics({ eventLoopMonitoringPrecision: 10 });

/**
 * Prometheus metrics with prom-client: its default process and event-loop series plus Devpilot's
 * own. (Not through @willsoto/nestjs-prometheus: that package is CommonJS and require()s Nest 12's
 * ESM packages, which Node does but jest's ESM mode cannot, so nothing that imports the app
 * module could be tested.)
 */
@Global()
@Module({
  imports: [AgentLinkModule, ExecutionsModule, RetentionModule],
  controllers: [MetricsController],
  providers: [DevpilotMetrics, LiveConnections],
  exports: [DevpilotMetrics, LiveConnections],
})
export class MetricsModule {}
