import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';

/** A key was deleted: everything it holds open (feed sockets, SSE streams) is closed at once. */
@Injectable()
export class ApiKeyEvents {
  readonly revoked = new Subject<{ keyId: string }>();
}
