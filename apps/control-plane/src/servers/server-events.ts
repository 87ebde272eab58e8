import { Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';
import type { ServerStatus } from './server.entity.js';

/** In-process notifications about servers. */
@Injectable()
export class ServerEvents {
  /** A server's token stopped being valid (rotated or deleted): the agents gateway drops its connection. */
  readonly tokenRevoked = new Subject<{ serverId: string }>();
  /** A server's agent came online or went offline (committed); the dashboard feed listens. */
  readonly statusChanged = new Subject<{ serverId: string; workspaceId: string; status: ServerStatus }>();
}
