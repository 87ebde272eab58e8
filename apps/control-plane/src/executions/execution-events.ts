import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';
import type { Execution } from './execution.entity.js';

/** In-process notifications about executions; the dispatcher and the dashboard feed listen. */
@Injectable()
export class ExecutionEvents {
  /** A new execution row was committed with status `queued`. */
  readonly created = new Subject<Execution>();
}
