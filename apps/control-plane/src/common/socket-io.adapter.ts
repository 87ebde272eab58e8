import { AGENT_IO_PATH, DASHBOARD_IO_PATH, MAX_CHUNKS_PER_BATCH, MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MAX_VIEWER_MESSAGE_BYTES } from '@app/protocol';
import type { INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { IncomingMessage } from 'node:http';
import type { Server, ServerOptions } from 'socket.io';
import * as parser from 'socket.io-parser';
import { HandshakeGates } from './handshake-gates.js';
import { jsonTooDeep } from './json-depth.js';

/**
 * socket.io-parser refuses a packet with more than 10 binary attachments by default and the
 * server then drops the connection. Every output chunk of an agent's batch is one attachment, so
 * the decoder must accept a full batch (plus a margin for the ack framing). A text packet nested
 * deeper than the protocol ever needs is refused before JSON.parse sees it (the connection closes).
 */
class BatchDecoder extends parser.Decoder {
  constructor() {
    super({ maxAttachments: MAX_CHUNKS_PER_BATCH + 8 });
  }

  override add(obj: unknown): void {
    if (typeof obj === 'string' && jsonTooDeep(obj, MAX_JSON_DEPTH)) throw new Error(`packet nested deeper than ${MAX_JSON_DEPTH}`);
    super.add(obj);
  }
}

/**
 * The socket.io servers, one per engine path: `/socket.io/` for agents (large output batches),
 * `/dashboard-io/` for viewers (tiny messages, so a small buffer). Nest creates one server per
 * gateway `path` and takes its engine options from the first gateway of that path; the options
 * that matter are set here. Every engine checks the credential of a new connection in
 * `allowRequest`, on the HTTP request, before any packet is parsed (HandshakeGates).
 */
export class DevpilotIoAdapter extends IoAdapter {
  constructor(private readonly app: INestApplicationContext) {
    super(app);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const path = options?.path ?? AGENT_IO_PATH;
    const viewers = path === DASHBOARD_IO_PATH;
    return super.createIOServer(port, {
      ...options,
      path,
      // Viewers behind proxies that do not pass WebSocket may need long-polling; agents never.
      transports: viewers ? ['websocket', 'polling'] : ['websocket'],
      maxHttpBufferSize: viewers ? MAX_VIEWER_MESSAGE_BYTES : MAX_MESSAGE_BYTES,
      parser: { ...parser, Decoder: BatchDecoder },
      allowRequest: (req: IncomingMessage, done: (message: string | null | undefined, success: boolean) => void) => {
        const check = this.app.get(HandshakeGates, { strict: false }).get(path);
        if (!check) return done('this socket.io path takes no connections', false);
        check(req).then(
          (refusal) => done(refusal, refusal === null),
          () => done('the credential could not be checked; retry later', false),
        );
      },
    } as ServerOptions) as Server;
  }
}
