import { HttpException, HttpStatus } from '@nestjs/common';

/** The stable error codes callers may rely on (docs/architecture.md, "Errors"). */
export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'CONFLICT'
  | 'IMMUTABLE_FIELD'
  | 'INVALID_TOKEN'
  | 'IP_NOT_ALLOWED'
  | 'INVALID_SIGNATURE'
  | 'STALE_SIGNATURE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RATE_LIMITED'
  | 'OVERLOADED'
  | 'TOO_MANY_CONNECTIONS'
  | 'INVALID_STATE'
  | 'OUTPUT_EXPIRED'
  | 'QUOTA_EXCEEDED'
  | 'DATABASE_UNAVAILABLE'
  | 'INTERNAL_ERROR';

export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  message: string;
  errorId?: string;
}

/** An error answered as `{statusCode, code, message}`. */
export class AppException extends HttpException {
  constructor(
    status: HttpStatus,
    readonly code: ErrorCode,
    message: string,
  ) {
    super({ statusCode: status, code, message } satisfies ErrorBody, status);
  }
}

/** An error the caller may retry later: answered with `Retry-After`. */
export class RetryLaterException extends AppException {
  constructor(
    status: HttpStatus,
    code: ErrorCode,
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(status, code, message);
  }
}

/**
 * 503: the server's backlog is full (DEVPILOT_MAX_QUEUED_PER_SERVER runs, or for a call whose
 * request is kept, DEVPILOT_MAX_QUEUED_REQUEST_BYTES_PER_SERVER bytes of kept requests); nothing was written.
 */
export const overloaded = (runs: number, requestBytes: number) =>
  new RetryLaterException(
    HttpStatus.SERVICE_UNAVAILABLE,
    'OVERLOADED',
    `this server's backlog is full (its bounds: ${runs} waiting runs, ${requestBytes} bytes of their kept requests); nothing was queued, retry later`,
    30,
  );

export const notFound = (what: string) => new AppException(HttpStatus.NOT_FOUND, 'NOT_FOUND', `${what} not found`);
