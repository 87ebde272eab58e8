import { HttpStatus, ParseUUIDPipe } from '@nestjs/common';
import { AppException } from './app-exception.js';

/** Route ids are UUIDs; anything else is answered 400 VALIDATION_ERROR. */
export const uuidPipe = new ParseUUIDPipe({
  exceptionFactory: () => new AppException(HttpStatus.BAD_REQUEST, 'VALIDATION_ERROR', 'id must be a UUID'),
});
