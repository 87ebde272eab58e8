// One nginx for the tests (Debian's `nginx` package): its own prefix and config on loopback, free
// ports, stopped by stop() or when the test process exits. The server block is the README's
// (deploy/nginx-devpilot.conf) with only its addresses, ports and certificate paths replaced.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './control-plane.js';
import { freePort, ManagedProcess, waitFor } from './processes.js';

export const NGINX_TEMPLATE = path.join(ROOT, 'deploy/nginx-devpilot.conf');
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

export interface Pki {
  dir: string;
  /** The private CA's certificate (PEM file): what clients must trust. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A private CA and a server certificate it signed for localhost and 127.0.0.1, made with openssl. */
export async function createPki(): Promise<Pki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'devpilot-pki-'));
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Devpilot test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  await writeFile(f('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('server.ext'));
  return { dir, caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') };
}

export interface NginxOptions {
  /** Backends as `host:port`, in the order of the upstream block. */
  upstreams: string[];
  /** Serve TLS with this certificate; plain HTTP without. */
  tls?: Pki;
}

export interface Nginx {
  port: number;
  /** `https://127.0.0.1:<port>` (or http:// without TLS). */
  url: string;
  /** The config file nginx runs with. */
  configFile: string;
  proc: ManagedProcess;
  errorLog(): string;
  stop(): Promise<void>;
}

/** Replaces `from` in `text`, which must occur exactly once: a changed template fails loudly here. */
function replaceOnce(text: string, from: string | RegExp, to: string): string {
  const pattern = from instanceof RegExp ? new RegExp(from.source, `${from.flags}g`) : new RegExp(from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g');
  const matches = text.match(pattern);
  if (matches?.length !== 1) throw new Error(`nginx template: expected ${String(from)} once in ${NGINX_TEMPLATE}, found ${matches?.length ?? 0}`);
  return text.replace(from, () => to);
}

/** The README's server block for these backends and this listener. */
export function renderServerBlock(opts: NginxOptions & { listen: string }): string {
  let conf = readFileSync(NGINX_TEMPLATE, 'utf8');
  conf = replaceOnce(conf, /^ {4}server 127\.0\.0\.1:3000;$/m, opts.upstreams.map((u) => `    server ${u};`).join('\n'));
  conf = replaceOnce(conf, 'listen 443 ssl;', `listen ${opts.listen}${opts.tls ? ' ssl' : ''};`);
  conf = replaceOnce(conf, /^ {4}ssl_certificate .*$/m, opts.tls ? `    ssl_certificate ${opts.tls.certFile};` : '');
  conf = replaceOnce(conf, /^ {4}ssl_certificate_key .*$/m, opts.tls ? `    ssl_certificate_key ${opts.tls.keyFile};` : '');
  return conf;
}

/** Starts nginx in the foreground in front of `upstreams` on a free loopback port. */
export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install -y nginx; .ci/run does it)');
  const prefix = await mkdtemp(path.join(os.tmpdir(), 'devpilot-nginx-'));
  await mkdir(path.join(prefix, 'logs'));
  const port = await freePort();
  const configFile = path.join(prefix, 'nginx.conf');
  const errorLogFile = path.join(prefix, 'logs/error.log');
  const temp = (name: string) => `${name}_temp_path ${path.join(prefix, name)};`;
  await writeFile(
    configFile,
    [
      // As root, the workers would run as `nobody` and could not use the temp folders in the prefix.
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      'daemon off;',
      'worker_processes 1;',
      `pid ${path.join(prefix, 'nginx.pid')};`,
      `error_log ${errorLogFile} info;`,
      'events { worker_connections 1024; }',
      'http {',
      `  access_log ${path.join(prefix, 'logs/access.log')};`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `  ${temp(n)}`),
      renderServerBlock({ ...opts, listen: `127.0.0.1:${port}` }),
      '}',
      '',
    ].join('\n'),
  );
  const proc = ManagedProcess.spawn(NGINX, ['-p', prefix, '-c', configFile, '-e', errorLogFile], { PATH: process.env.PATH });
  const kill = () => proc.running && proc.child.kill('SIGKILL');
  process.once('exit', kill);
  const scheme = opts.tls ? 'https' : 'http';
  const errorLog = () => (existsSync(errorLogFile) ? readFileSync(errorLogFile, 'utf8') : '');
  await waitFor(`nginx listening on ${port}`, () => {
    if (!proc.running) throw new Error(`nginx exited: ${proc.logs}\n${errorLog()}`);
    return errorLog().includes('start worker process');
  }, 20_000);
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    configFile,
    proc,
    errorLog,
    async stop() {
      process.off('exit', kill);
      // SIGQUIT is nginx's graceful stop; a WebSocket still open would hold it, so SIGKILL after 5 s.
      await proc.stop('SIGQUIT', 5_000);
    },
  };
}
