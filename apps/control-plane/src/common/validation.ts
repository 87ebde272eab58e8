import { HttpStatus, ValidationPipe, type ValidationError } from '@nestjs/common';
import { AppException } from './app-exception.js';

/** Whitelist validation: unknown fields are refused, every message names its field. */
export function validationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    stopAtFirstError: true,
    exceptionFactory: (errors: ValidationError[]) =>
      new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', flatten(errors).join('; ') || 'Invalid request'),
  });
}

function flatten(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const field = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) =>
      m.startsWith('property ') ? `${field} is not allowed` : m.replace(e.property, field),
    );
    return [...own, ...flatten(e.children ?? [], field)];
  });
}
