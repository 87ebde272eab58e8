import { All, Controller, HttpCode, HttpStatus, Post, type RawBodyRequest, Req, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBody,
  ApiExcludeEndpoint,
  ApiExtraModels,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiResponse,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { AppException } from '../common/app-exception.js';
import { Public } from '../common/auth/auth-context.js';
import { AcceptedDto } from '../executions/dto/execution-view.dto.js';
import { DuplicateDto, ErrorBodyDto, FinishedDto, SkippedDto, SlackChallengeDto } from './dto/trigger.dto.js';
import { type TriggerAnswer, WebhookTriggerService } from './webhook-trigger.service.js';

const TOKEN_EXAMPLE = '3f9a1c0e5b7d2a4c6e8f0b1d3a5c7e9f1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a';

/** Every refusal of the trigger, with the error schema (the same for all). */
function TriggerErrors(): MethodDecorator {
  const error = (status: number, description: string) => ApiResponse({ status, description, type: ErrorBodyDto });
  const decorators = [
    error(400, 'VALIDATION_ERROR: no token, two different tokens, malformed JSON, a delivery id over 255 characters'),
    error(401, 'INVALID_SIGNATURE (missing, malformed or wrong), or STALE_SIGNATURE (a timestamp more than 300 s from now)'),
    error(403, 'IP_NOT_ALLOWED'),
    error(404, 'INVALID_TOKEN: unknown, deleted or paused (they look the same)'),
    error(405, 'METHOD_NOT_ALLOWED: anything but POST'),
    error(413, 'PAYLOAD_TOO_LARGE: a body over the limit (1 MiB by default)'),
    error(429, 'RATE_LIMITED: too many invalid tokens from the address, or invalid signatures for the webhook (Retry-After)'),
    error(503, 'OVERLOADED: too many runs, or too many bytes of kept requests, wait for the server (Retry-After); or DATABASE_UNAVAILABLE'),
  ];
  return (target, key, descriptor) => {
    for (const d of decorators) d(target, key, descriptor);
  };
}

/** Both forms of the trigger take the same headers. */
function TriggerHeaders(): MethodDecorator {
  const headers = [
    ApiHeader({ name: 'X-Webhook-Token', required: false, description: 'The token, for senders that set a header' }),
    ApiHeader({ name: 'Authorization', required: false, description: '`Bearer <token>` (Alertmanager, Grafana)' }),
    ApiHeader({ name: 'X-Webhook-Signature', required: false, description: 'devpilot scheme: hex HMAC-SHA256 of the raw body (optionally `sha256=`)' }),
    ApiHeader({ name: 'X-Hub-Signature-256', required: false, description: 'github scheme: `sha256=<hex>`' }),
    ApiHeader({ name: 'X-Gitlab-Token', required: false, description: 'gitlab scheme: the secret itself' }),
    ApiHeader({ name: 'webhook-signature', required: false, description: 'standard-webhooks scheme, with webhook-id and webhook-timestamp' }),
    ApiHeader({ name: 'X-Slack-Signature', required: false, description: 'slack scheme: `v0=<hex>`, with X-Slack-Request-Timestamp' }),
    ApiHeader({ name: 'Prefer', required: false, description: '`wait=N` (1..60; also `?wait=N`): answer 200 with the result if the run ends within N s' }),
    ApiHeader({ name: 'Idempotency-Key', required: false, description: 'A delivery id, when the scheme has none of its own: the same id within 24 h runs nothing (200 duplicate)' }),
  ];
  return (target, key, descriptor) => {
    for (const d of headers) d(target, key, descriptor);
  };
}

/** The 200 answers: a delivery seen before, or Slack's URL verification. */
const OK_RESPONSE = ApiOkResponse({
  description:
    'With `Prefer: wait=N` or `?wait=N` (1..60), the run ended within N s: its result, with `Preference-Applied: wait=N` (otherwise the usual 202); ' +
    'a delivery seen before (`duplicate: true`, the first execution; nothing runs); `skipped` by the webhook’s policy (a run already active, or its cooldown); ' +
    'or the `challenge` of a Slack url_verification',
  headers: { 'Preference-Applied': { description: '`wait=N` when the answer is the ended run', schema: { type: 'string' } } },
  schema: { oneOf: [{ $ref: getSchemaPath(FinishedDto) }, { $ref: getSchemaPath(DuplicateDto) }, { $ref: getSchemaPath(SkippedDto) }, { $ref: getSchemaPath(SlackChallengeDto) }] },
});

/**
 * The public trigger. The body is read by hand, not through the whitelisting DTO pipe: callers
 * may send fields of their own next to `token` (`{"token": "...", "ref": "main"}`), which are
 * accepted and ignored, and a signature covers the raw bytes, never a re-serialised object. The
 * body arrives as raw bytes of any type (http-app.ts), so a sender's own payload (GitHub's
 * form-encoded option, Slack's commands) passes when the token is in the path or a header.
 */
@ApiTags('webhooks')
@ApiExtraModels(FinishedDto, DuplicateDto, SkippedDto, SlackChallengeDto, ErrorBodyDto)
@Controller('webhooks')
export class TriggerController {
  constructor(private readonly triggers: WebhookTriggerService) {}

  @Post('script_execute')
  @Public()
  @HttpCode(202)
  @ApiOperation({ summary: 'Run the webhook’s script on its server (no API key: the token authenticates)' })
  @ApiBody({
    required: false,
    description: 'JSON `{"token"}` when the token is in the body; with the token in a header, any body (the sender’s own payload)',
    schema: { type: 'object', properties: { token: { type: 'string', minLength: 64, maxLength: 64, example: TOKEN_EXAMPLE } } },
  })
  @TriggerHeaders()
  @ApiAcceptedResponse({ type: AcceptedDto })
  @OK_RESPONSE
  @TriggerErrors()
  // A 429 or 503 carries Retry-After (the exception filter sets it).
  trigger(@Req() req: RawBodyRequest<Request>, @Res({ passthrough: true }) res: Response): Promise<TriggerAnswer['body']> {
    return this.answer(req, res, undefined);
  }

  @Post('script_execute/:token')
  @Public()
  @HttpCode(202)
  @ApiOperation({ summary: 'The trigger with the token in the path, for senders that only take a URL (GitHub, GitLab, Slack)' })
  @ApiParam({ name: 'token', description: 'The webhook’s token (64 hex characters); redacted in request logs', example: TOKEN_EXAMPLE })
  @ApiBody({ required: false, description: 'Anything (JSON, form-encoded, empty): the sender’s own payload', schema: { type: 'string', format: 'binary' } })
  @TriggerHeaders()
  @ApiAcceptedResponse({ type: AcceptedDto })
  @OK_RESPONSE
  @TriggerErrors()
  triggerWithPathToken(@Req() req: RawBodyRequest<Request>, @Res({ passthrough: true }) res: Response): Promise<TriggerAnswer['body']> {
    const token = req.params.token;
    return this.answer(req, res, typeof token === 'string' ? token : undefined);
  }

  // A browser opening the URL sends GET: say which method the endpoint takes rather than asking
  // for an API key it does not need. Declared after the POST routes, so it only sees the others.
  @All(['script_execute', 'script_execute/:token'])
  @Public()
  @ApiExcludeEndpoint()
  methodNotAllowed(@Res({ passthrough: true }) res: Response): never {
    res.setHeader('Allow', 'POST');
    throw new AppException(HttpStatus.METHOD_NOT_ALLOWED, 'METHOD_NOT_ALLOWED', 'This endpoint takes POST with a JSON body {"token": "..."}');
  }

  private async answer(req: RawBodyRequest<Request>, res: Response, pathToken: string | undefined): Promise<TriggerAnswer['body']> {
    const answer = await this.triggers.trigger({ pathToken, rawBody: req.rawBody, ip: req.ip, headers: req.headers, waitQuery: req.query.wait });
    // With the response injected, Nest leaves the status to us (@HttpCode documents the usual one).
    res.status(answer.status);
    if ('waited' in answer) res.setHeader('Preference-Applied', `wait=${answer.waited}`);
    return answer.body;
  }
}
