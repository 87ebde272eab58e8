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
