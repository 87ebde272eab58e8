// The baseline for connected agents: a bare socket.io server with the same namespace, transport
// and message limit as the control plane's /agent, answering hello; no database, no framework.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2]);
const http = createServer();
const io = new Server(http, { transports: ['websocket'], maxHttpBufferSize: 8 * 1024 * 1024 });
// The agents send their token as the control plane wants it since protocol 3: a Bearer header on the upgrade.
const tokenOf = (socket) => /^Bearer (\S+)$/.exec(socket.handshake.headers.authorization ?? '')?.[1];
io.of('/agent').use((socket, next) => (tokenOf(socket) ? next() : next(new Error('unauthorized'))));
io.of('/agent').on('connection', (socket) => {
  socket.join(`server:${tokenOf(socket)}`);
  socket.on('agent.hello', (_msg, ack) => ack?.({ resend: [] }));
});
http.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
