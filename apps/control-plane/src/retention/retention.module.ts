import { Module } from '@nestjs/common';
import { ExecutionsModule } from '../executions/executions.module.js';
import { WebhooksModule } from '../webhooks/webhooks.module.js';
import { RetentionService } from './retention.service.js';

@Module({
  imports: [ExecutionsModule, WebhooksModule],
  providers: [RetentionService],
  exports: [RetentionService],
})
export class RetentionModule {}
