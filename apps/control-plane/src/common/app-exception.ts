import { HttpException, HttpStatus } from '@nestjs/common';

/** The stable error codes callers may rely on (docs/architecture.md, "Errors"). */
export type ErrorCode =
  | 'VALIDATION_ERROR'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'IMMUTABLE_FIELD'
  | 'INVALID_TOKEN'
  | 'IP_NOT_ALLOWED'
  | 'INVALID_SIGNATURE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RATE_LIMITED'
  | 'INVALID_STATE'
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

export const notFound = (what: string) => new AppException(HttpStatus.NOT_FOUND, 'NOT_FOUND', `${what} not found`);
