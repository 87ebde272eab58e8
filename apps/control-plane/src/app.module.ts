import { type DynamicModule, Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { AgentsModule } from './agents/agents.module.js';
import { loggerParams } from './common/logging.js';
import { CommonModule } from './common/common.module.js';
import type { AppConfig } from './config/app-config.js';
import { ConfigModule } from './config/config.module.js';
import { DashboardModule } from './dashboard/dashboard.module.js';
import { DatabaseModule } from './database/database.module.js';
import { ExecutionsModule } from './executions/executions.module.js';
import { HealthModule } from './health/health.module.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { RetentionModule } from './retention/retention.module.js';
import { ScriptsModule } from './scripts/scripts.module.js';
import { SecretsModule } from './secrets/secrets.module.js';
import { ServersModule } from './servers/servers.module.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';
import { WorkspacesModule } from './workspaces/workspaces.module.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig, databaseUrl: string): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot(loggerParams(config)),
        DatabaseModule.forRoot(databaseUrl, config.dbPoolSize),
        CommonModule,
        HealthModule,
        WorkspacesModule,
        ServersModule,
        ScriptsModule,
        SecretsModule,
        ExecutionsModule,
        AgentsModule,
        WebhooksModule,
        DashboardModule,
        RetentionModule,
        MetricsModule,
      ],
    };
  }
}
