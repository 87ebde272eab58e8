import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';

/** Tells the agents gateway when a server's token stops being valid (rotated or deleted). */
@Injectable()
export class ServerEvents {
  readonly tokenRevoked = new Subject<{ serverId: string }>();
}
