import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ExecutionsModule } from '../executions/executions.module.js';
import { Server } from '../servers/server.entity.js';
import { ServersModule } from '../servers/servers.module.js';
import { WorkspacesModule } from '../workspaces/workspaces.module.js';
import { AgentFilesController } from './agent-files.controller.js';
import { AgentLinkModule } from './agent-link.module.js';
import { AgentPresence } from './agent-presence.js';
import { AgentReports } from './agent-reports.service.js';
import { AgentsGateway } from './agents.gateway.js';
import { AgentsHealthIndicator } from './agents.health.js';
import { Dispatcher } from './dispatcher.js';
import { LocalAgentService } from './local-agent.service.js';

/** The relay: the /agent gateway, the dispatcher, what agents report, and the local agent. */
@Module({
  imports: [AgentLinkModule, TerminusModule, TypeOrmModule.forFeature([Server]), ServersModule, ExecutionsModule, WorkspacesModule],
  controllers: [AgentFilesController],
  providers: [AgentPresence, AgentReports, AgentsGateway, Dispatcher, AgentsHealthIndicator, LocalAgentService],
  exports: [AgentsHealthIndicator, AgentLinkModule, Dispatcher],
})
export class AgentsModule {}
