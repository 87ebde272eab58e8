import {
  Body,
  type CallHandler,
  Controller,
  Delete,
  type ExecutionContext,
  Get,
  HttpCode,
  HttpStatus,
  Injectable,
  type NestInterceptor,
  Param,
  Patch,
  Post,
  Query,
  UseInterceptors,
} from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors } from '../common/api-doc.js';
import type { Request } from 'express';
import type { Observable } from 'rxjs';
import { AppException } from '../common/app-exception.js';
import { Auth, type AuthContext } from '../common/auth/auth-context.js';
import { ListQueryDto } from '../common/list-query.dto.js';
import { uuidPipe } from '../common/uuid.pipe.js';
import { CreateWebhookDto, UpdateWebhookDto } from './dto/webhooks.dto.js';
import { WebhooksService } from './webhooks.service.js';
import { DeliveryPageDto, WebhookPageDto, WebhookViewDto } from './dto/webhook-view.dto.js';
import { forbiddenOrFull } from '../common/workspace-limits.js';

const IMMUTABLE = ['token', 'hmacSecret', 'signatureScheme'] as const;

/**
 * A PATCH naming `token`, `hmacSecret` or `signatureScheme` is IMMUTABLE_FIELD. An interceptor runs after the API key
 * guard and before any pipe, so this answer comes before the whitelist validation would call
 * them unknown (or null) fields.
 */
@Injectable()
class RefuseImmutableFields implements NestInterceptor {
  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const body: unknown = ctx.switchToHttp().getRequest<Request>().body;
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      const named = IMMUTABLE.filter((f) => Object.hasOwn(body, f));
      if (named.length) {
        const them = named.length > 1 ? 'them' : 'it';
        throw new AppException(
          HttpStatus.BAD_REQUEST,
          'IMMUTABLE_FIELD',
          `${named.join(' and ')} cannot be changed: create a new webhook to ${named.length === 1 && named[0] === 'signatureScheme' ? 'change' : 'rotate'} ${them}`,
        );
      }
    }
    return next.handle();
  }
}

@ApiTags('webhooks')
@ApiBearerAuth()
@Controller()
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Post('scripts/:id/webhooks')
  @ApiErrors(400, 401, forbiddenOrFull('webhooks'), { status: 404, code: 'NOT_FOUND', message: 'Script not found' })
  @ApiOperation({ summary: 'A webhook for this script on one server; the token is generated here' })
  @ApiCreatedResponse({ type: WebhookViewDto })
  create(@Auth() auth: AuthContext, @Param('id', uuidPipe) scriptId: string, @Body() dto: CreateWebhookDto) {
    return this.webhooks.create(auth, scriptId, dto);
  }

  @Get('scripts/:id/webhooks')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Script not found' })
  @ApiOkResponse({ type: WebhookPageDto })
  list(@Auth() auth: AuthContext, @Param('id', uuidPipe) scriptId: string, @Query() q: ListQueryDto) {
    return this.webhooks.list(auth, scriptId, q.limit, q.cursor);
  }

  @Get('webhooks/:id')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Webhook not found' })
  @ApiOkResponse({ type: WebhookViewDto })
  get(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string) {
    return this.webhooks.get(auth, id);
  }

  @Patch('webhooks/:id')
  @ApiErrors(
    {
      status: 400,
      code: 'IMMUTABLE_FIELD',
      message: 'token cannot be changed: create a new webhook to rotate it',
      description: 'VALIDATION_ERROR: a field is invalid; IMMUTABLE_FIELD: the body names token or hmacSecret',
    },
    401,
    403,
    { status: 404, code: 'NOT_FOUND', message: 'Webhook not found' },
  )
  @ApiOperation({ summary: 'Rename, pause/resume, or change the allowed IPs (token and HMAC secret are set once)' })
  @UseInterceptors(RefuseImmutableFields)
  @ApiOkResponse({ type: WebhookViewDto })
  update(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Body() dto: UpdateWebhookDto) {
    return this.webhooks.update(auth, id, dto);
  }

  @Delete('webhooks/:id')
  @ApiErrors(400, 401, 403, { status: 404, code: 'NOT_FOUND', message: 'Webhook not found' })
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete: the token stops working at once' })
  @ApiNoContentResponse({ description: 'Deleted: the token stops working at once' })
  async delete(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string): Promise<void> {
    await this.webhooks.delete(auth, id);
  }

  @Get('webhooks/:id/deliveries')
  @ApiErrors(400, 401, { status: 404, code: 'NOT_FOUND', message: 'Webhook not found' })
  @ApiOperation({ summary: 'Recent calls, accepted and rejected, newest first' })
  @ApiOkResponse({ type: DeliveryPageDto })
  deliveries(@Auth() auth: AuthContext, @Param('id', uuidPipe) id: string, @Query() q: ListQueryDto) {
    return this.webhooks.listDeliveries(auth, id, q.limit, q.cursor);
  }
}
