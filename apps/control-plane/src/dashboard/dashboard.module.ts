import { Module } from '@nestjs/common';
import { ExecutionsModule } from '../executions/executions.module.js';
import { ServersModule } from '../servers/servers.module.js';
import { WorkspacesModule } from '../workspaces/workspaces.module.js';
import { DashboardFeed } from './dashboard-feed.service.js';
import { DashboardGateway } from './dashboard.gateway.js';

/** The `/dashboard` live feed for viewers (the built SPA itself is served by http-app). */
@Module({
  imports: [ExecutionsModule, ServersModule, WorkspacesModule],
  providers: [DashboardGateway, DashboardFeed],
})
export class DashboardModule {}
