import { randomBytes } from 'node:crypto';
import { request } from 'node:http';

/**
 * Sends a bare WebSocket upgrade to a socket.io path and returns the answer when it is not an
 * upgrade (a refused credential): its HTTP status and body, the words a client library hides.
 */
export function upgradeRefusal(baseUrl: string, path: string, headers: Record<string, string>, query = ''): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}?EIO=4&transport=websocket${query}`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error('the upgrade was accepted'));
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
