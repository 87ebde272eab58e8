import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiProperty, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import type { ErrorCode } from './app-exception.js';

/**
 * Helpers for the response classes that describe the API in the OpenAPI document. Those classes
 * are documentation only (nothing is ever an instance of them); the checks below make the compiler
 * refuse a class that no longer matches what its service returns.
 */

/** A value as it goes over the wire as JSON: dates become ISO strings. */
export type Json<T> = T extends Date
  ? string
  : T extends readonly (infer U)[]
    ? Json<U>[]
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

/** `true` only when A and B are the same type (optional and nullable properties included). */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** Compiles only when given `true`: `export type X = Assert<Same<Json<View>, ViewDto>>`. */
export type Assert<T extends true> = T;

export const DATE_TIME = { type: String, format: 'date-time' } as const;

/** Every error answer: `{statusCode, code, message}` (the exception filter writes nothing else). */
export class ErrorDto {
  @ApiProperty({ example: 404, description: 'The HTTP status, repeated' })
  statusCode!: number;
  @ApiProperty({ type: String, example: 'NOT_FOUND', description: 'Stable, upper-case: what callers branch on' })
  code!: ErrorCode;
  @ApiProperty({ example: 'Script not found', description: 'For people; may change' })
  message!: string;
  @ApiProperty({ required: false, example: '3f1c2a9e', description: 'Only on 500: the id under which the error was logged' })
  errorId?: string;
}

export interface ErrorAnswer {
  status: number;
  code: ErrorCode;
  message: string;
  /** When one status has several causes or codes; else `CODE: message`. */
  description?: string;
}

const INVALID = 'VALIDATION_ERROR: a path parameter, query parameter or body field is invalid; the message names it';
/** 400 of a route whose input is a query (no id in its path). */
export const BAD_QUERY: ErrorAnswer = { status: 400, code: 'VALIDATION_ERROR', message: 'limit must not be greater than 200', description: INVALID };
/** 400 of a route whose input is a JSON body (no id in its path). */
export const BAD_BODY: ErrorAnswer = { status: 400, code: 'VALIDATION_ERROR', message: 'colour is not allowed', description: INVALID };

/** The answers every management route can give, as the API key guard and the validation pipe write them. */
const COMMON: Record<number, ErrorAnswer> = {
  400: { status: 400, code: 'VALIDATION_ERROR', message: 'id must be a UUID', description: INVALID },
  401: { status: 401, code: 'UNAUTHORIZED', message: 'Missing API key: send Authorization: Bearer <api key>' },
  403: { status: 403, code: 'FORBIDDEN', message: 'A viewer key can read but not change anything' },
  404: { status: 404, code: 'NOT_FOUND', message: 'Not found' },
};

/**
 * Lists an operation's error answers in the OpenAPI document, each with the error schema and an
 * example: a status alone takes the common answer for it, an object names its own code and message.
 */
export function ApiErrors(...answers: (400 | 401 | 403 | 404 | ErrorAnswer)[]): MethodDecorator {
  return applyDecorators(
    ...answers.map((a) => {
      const e = typeof a === 'number' ? COMMON[a]! : a;
      // JSON whatever the route produces on success (output and events routes stream bytes or SSE).
      const json = { schema: { $ref: getSchemaPath(ErrorDto) }, example: { statusCode: e.status, code: e.code, message: e.message } };
      return ApiResponse({ status: e.status, description: e.description ?? `${e.code}: ${e.message}`, content: { 'application/json': json } });
    }),
    ApiExtraModels(ErrorDto),
  );
}
