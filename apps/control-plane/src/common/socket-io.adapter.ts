import { MAX_CHUNKS_PER_BATCH, MAX_MESSAGE_BYTES } from '@app/protocol';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { Server, ServerOptions } from 'socket.io';
import * as parser from 'socket.io-parser';

/**
 * socket.io-parser refuses a packet with more than 10 binary attachments by default and the
 * server then drops the connection. Every output chunk of an agent's batch is one attachment, so
 * the decoder must accept a full batch (plus a margin for the ack framing).
 */
class BatchDecoder extends parser.Decoder {
  constructor() {
    super({ maxAttachments: MAX_CHUNKS_PER_BATCH + 8 });
  }
}

/**
 * The one socket.io server behind both namespaces. Engine options are per server, not per
 * namespace (Nest takes them from whichever gateway is created first), so they are set here:
 * both transports at the engine (viewers behind proxies may need long-polling; `/agent` refuses
 * anything but WebSocket in its own middleware), the message size limit and the parser.
 */
export class DevpilotIoAdapter extends IoAdapter {
  override createIOServer(port: number, options?: ServerOptions): Server {
    return super.createIOServer(port, {
      ...options,
      transports: ['websocket', 'polling'],
      maxHttpBufferSize: MAX_MESSAGE_BYTES,
      parser: { ...parser, Decoder: BatchDecoder },
    } as ServerOptions) as Server;
  }
}
