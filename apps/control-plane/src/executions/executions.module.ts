import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ExecutionEvents } from './execution-events.js';
import { ExecutionFeed } from './execution-feed.js';
import { ExecutionLifecycle } from './execution-lifecycle.service.js';
import { ExecutionOutputStore } from './execution-output.service.js';
import { ExecutionOutput } from './execution-output.entity.js';
import { Execution } from './execution.entity.js';
import { ExecutionsController } from './executions.controller.js';
import { ExecutionsService } from './executions.service.js';
import { OutputCursors } from './output-cursors.js';

@Module({
  imports: [TypeOrmModule.forFeature([Execution, ExecutionOutput])],
  controllers: [ExecutionsController],
  providers: [ExecutionsService, ExecutionEvents, ExecutionLifecycle, ExecutionOutputStore, ExecutionFeed, OutputCursors],
  exports: [ExecutionsService, ExecutionEvents, ExecutionLifecycle, ExecutionOutputStore, OutputCursors],
})
export class ExecutionsModule {}
