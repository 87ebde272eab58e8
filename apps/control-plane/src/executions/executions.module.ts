import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ExecutionOutput } from './execution-output.entity.js';
import { ExecutionEvents } from './execution-events.js';
import { Execution } from './execution.entity.js';
import { ExecutionsService } from './executions.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([Execution, ExecutionOutput])],
  providers: [ExecutionsService, ExecutionEvents],
  exports: [ExecutionsService, ExecutionEvents],
})
export class ExecutionsModule {}
