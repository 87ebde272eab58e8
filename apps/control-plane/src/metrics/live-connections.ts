import { Injectable } from '@nestjs/common';

/** How many live viewer connections and SSE streams this node holds (for /metrics). */
@Injectable()
export class LiveConnections {
  viewers = 0;
  sseStreams = 0;
}
