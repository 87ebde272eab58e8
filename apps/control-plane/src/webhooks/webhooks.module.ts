import { Module } from '@nestjs/common';
import { AgentsModule } from '../agents/agents.module.js';
import { ExecutionsModule } from '../executions/executions.module.js';
import { DeliveryLog } from './delivery-log.service.js';
import { TriggerController } from './trigger.controller.js';
import { WebhookTriggerService } from './webhook-trigger.service.js';
import { WebhooksController } from './webhooks.controller.js';
import { WebhooksService } from './webhooks.service.js';

@Module({
  imports: [ExecutionsModule, AgentsModule],
  // The trigger's controller first: its static path must win over `webhooks/:id`.
  controllers: [TriggerController, WebhooksController],
  providers: [WebhooksService, WebhookTriggerService, DeliveryLog],
  exports: [WebhooksService, DeliveryLog],
})
export class WebhooksModule {}
