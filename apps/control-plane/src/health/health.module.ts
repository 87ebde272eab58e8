import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AgentsModule } from '../agents/agents.module.js';
import { WorkspacesModule } from '../workspaces/workspaces.module.js';
import { HealthController } from './health.controller.js';

@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'json', gracefulShutdownTimeoutMs: 0 }), AgentsModule, WorkspacesModule],
  controllers: [HealthController],
})
export class HealthModule {}
