import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import { QueryFailedError } from 'typeorm';
import { type ErrorBody, type ErrorCode, RetryLaterException } from './app-exception.js';

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'VALIDATION_ERROR',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  503: 'DATABASE_UNAVAILABLE',
};

/** Answers every error in the one shape; anything unexpected is a 500 with an id that is also logged. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger(AllExceptionsFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const res = host.switchToHttp().getResponse<Response>();
    const body = this.toBody(exception);
    if (res.headersSent) {
      res.end();
      return;
    }
    if (exception instanceof RetryLaterException) res.setHeader('Retry-After', String(exception.retryAfterSeconds));
    res.status(body.statusCode).json(body);
  }

  toBody(exception: unknown): ErrorBody {
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const r = exception.getResponse();
      if (typeof r === 'object' && r !== null && 'code' in r && typeof (r as ErrorBody).code === 'string') {
        return r as ErrorBody;
      }
      const m = typeof r === 'string' ? r : (r as { message?: unknown }).message;
      const message = typeof m === 'string' ? m : Array.isArray(m) ? m.join(',') : exception.message;
      return { statusCode: status, code: CODE_BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL_ERROR' : 'VALIDATION_ERROR'), message };
    }
    const bodyParser = bodyParserError(exception);
    if (bodyParser) return bodyParser;
    if (isDatabaseUnavailable(exception)) {
      this.logger.warn({ err: describe(exception) }, 'database unavailable');
      return { statusCode: 503, code: 'DATABASE_UNAVAILABLE', message: 'The database is unavailable; try again shortly' };
    }
    const errorId = randomUUID();
    this.logger.error({ errorId, err: exception instanceof Error ? exception : describe(exception) }, 'unexpected error');
    return { statusCode: 500, code: 'INTERNAL_ERROR', message: `Internal error (error id ${errorId})`, errorId };
  }
}

/** body-parser errors carry `type` and `status` (malformed JSON, too large, bad charset). */
function bodyParserError(e: unknown): ErrorBody | null {
  if (typeof e !== 'object' || e === null || !('type' in e) || !('status' in e)) return null;
  const { type, status } = e as { type: string; status: number };
  if (type === 'entity.parse.failed') return { statusCode: 400, code: 'VALIDATION_ERROR', message: 'Malformed JSON body' };
  if (type === 'entity.too.deep') return { statusCode: 400, code: 'VALIDATION_ERROR', message: 'JSON body nested too deep' };
  if (type === 'entity.too.large') return { statusCode: 413, code: 'PAYLOAD_TOO_LARGE', message: 'Request body too large' };
  if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    return { statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Unsupported body encoding' };
  }
  if (status >= 400 && status < 500) return { statusCode: 400, code: 'VALIDATION_ERROR', message: 'Unreadable request body' };
  return null;
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300']);

export function isDatabaseUnavailable(e: unknown): boolean {
  const err = e instanceof QueryFailedError ? (e.driverError as unknown) : e;
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: string }).code;
  if (code && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
  const message = (err as { message?: string }).message ?? '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is not established/i.test(
    message,
  );
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
