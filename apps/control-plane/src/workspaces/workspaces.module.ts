import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ApiKeyGuard } from '../common/auth/api-key.guard.js';
import { ApiKey } from './api-key.entity.js';
import { ApiKeyEvents } from './api-key-events.js';
import { ApiKeysService } from './api-keys.service.js';
import { FeedTicketsController } from './feed-tickets.controller.js';
import { FeedTickets } from './feed-tickets.service.js';
import { KeyConnections } from './key-connections.js';
import { Workspace } from './workspace.entity.js';
import { WorkspacesController } from './workspaces.controller.js';
import { WorkspacesService } from './workspaces.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([Workspace, ApiKey])],
  controllers: [WorkspacesController, FeedTicketsController],
  providers: [ApiKeysService, ApiKeyEvents, KeyConnections, FeedTickets, WorkspacesService, { provide: APP_GUARD, useClass: ApiKeyGuard }],
  exports: [ApiKeysService, ApiKeyEvents, KeyConnections, FeedTickets, WorkspacesService],
})
export class WorkspacesModule {}
