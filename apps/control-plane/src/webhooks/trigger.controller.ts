import { All, Controller, HttpCode, HttpStatus, Post, type RawBodyRequest, Req, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBody, ApiExcludeEndpoint, ApiHeader, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { AppException } from '../common/app-exception.js';
import { Public } from '../common/auth/auth-context.js';
import { AcceptedDto } from '../executions/dto/execution-view.dto.js';
import type { Accepted } from '../executions/executions.service.js';
import { WebhookTriggerService } from './webhook-trigger.service.js';

/**
 * The public trigger. The body is read by hand, not through the whitelisting DTO pipe: callers
 * may send fields of their own next to `token` (`{"token": "...", "ref": "main"}`), which are
 * accepted and ignored, and a signature covers the raw bytes, never a re-serialised object.
 */
@ApiTags('webhooks')
@Controller('webhooks')
export class TriggerController {
  constructor(private readonly triggers: WebhookTriggerService) {}

  @Post('script_execute')
  @Public()
  @HttpCode(202)
  @ApiOperation({ summary: 'Run the webhook’s script on its server (no API key: the token authenticates)' })
  @ApiBody({ schema: { type: 'object', required: ['token'], properties: { token: { type: 'string', minLength: 64, maxLength: 64 } } } })
  @ApiHeader({ name: 'X-Webhook-Signature', required: false, description: 'hex HMAC-SHA256 of the raw body (optionally `sha256=`), when the webhook has a secret' })
  @ApiAcceptedResponse({ type: AcceptedDto })
  // A 429 or 503 carries Retry-After (the exception filter sets it).
  trigger(@Req() req: RawBodyRequest<Request>): Promise<Accepted> {
    return this.triggers.trigger({ body: req.body as unknown, rawBody: req.rawBody, ip: req.ip, headers: req.headers });
  }

  // A browser opening the URL sends GET: say which method the endpoint takes rather than asking
  // for an API key it does not need. Declared after the POST route, so it only sees the others.
  @All('script_execute')
  @Public()
  @ApiExcludeEndpoint()
  methodNotAllowed(@Res({ passthrough: true }) res: Response): never {
    res.setHeader('Allow', 'POST');
    throw new AppException(HttpStatus.METHOD_NOT_ALLOWED, 'METHOD_NOT_ALLOWED', 'This endpoint takes POST with a JSON body {"token": "..."}');
  }
}
