import { ClusterNews } from './cluster-news.js';
import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ExecutionEvents } from './execution-events.js';
import { ExecutionFeed } from './execution-feed.js';
import { AgentLinkModule } from '../agents/agent-link.module.js';
import { ExecutionRepository } from './execution.repository.js';
import { SecretsModule } from '../secrets/secrets.module.js';
import { WorkspacesModule } from '../workspaces/workspaces.module.js';
import { StartCommands } from './start-commands.js';
import { ExecutionOutputStore } from './execution-output.service.js';
import { ExecutionOutput } from './execution-output.entity.js';
import { Execution } from './execution.entity.js';
import { ExecutionsController } from './executions.controller.js';
import { ExecutionsService } from './executions.service.js';
import { OutputCursors } from './output-cursors.js';
import { ExecutionWaiter } from './execution-waiter.js';

@Module({
  imports: [TypeOrmModule.forFeature([Execution, ExecutionOutput]), AgentLinkModule, SecretsModule, WorkspacesModule],
  controllers: [ExecutionsController],
  providers: [ExecutionsService, ExecutionEvents, ExecutionRepository, ExecutionOutputStore, ExecutionFeed, StartCommands, OutputCursors, ClusterNews, ExecutionWaiter],
  exports: [ExecutionsService, ExecutionEvents, ExecutionRepository, ExecutionOutputStore, StartCommands, OutputCursors, ClusterNews, ExecutionWaiter],
})
export class ExecutionsModule {}
