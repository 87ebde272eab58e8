// The control plane's HTTP stack without its database: the same Nest global setup as
// apps/control-plane/src/http-app.ts (exception filter, validation pipe, nestjs-pino with the app's
// logger configuration, raw body, body limit, trust proxy off, the dashboard's static files on
// Express), serving the trigger's route shape and a small management GET, on Express or Fastify.
// Usage: node http-stack-server.mjs <port> <express|fastify> <shipped|every|sampled|none|absent> <static|nostatic>
// Env: HTTP_STACK_DIST (the build folder), HTTP_STACK_FASTIFY (a folder whose node_modules holds
// @nestjs/platform-fastify, with @nestjs/common and @nestjs/core resolving to the repository's copies).
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Controller, Get, HttpCode, Module, Param, Post, Query, Req, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import express from 'express';
import { Logger, LoggerModule } from 'nestjs-pino';

const [port, framework, logging, statics] = process.argv.slice(2);
const dist = process.env.HTTP_STACK_DIST;
const src = (p) => import(pathToFileURL(path.join(dist, 'apps/control-plane/apps/control-plane/src', p)).href);
const { AllExceptionsFilter } = await src('common/all-exceptions.filter.js');
const { validationPipe } = await src('common/validation.js');
const { loggerParams } = await src('common/logging.js');
const { ListQueryDto } = await src('common/list-query.dto.js');
const { uuidPipe } = await src('common/uuid.pipe.js');
const { checkSignature, SIGNATURE_HEADER } = await src('webhooks/webhook-signature.js');
const { dashboardDir, dashboardMiddleware } = await src('dashboard/dashboard-static.js');

const BODY_LIMIT = 1024 * 1024;
const SECRET = process.env.HTTP_STACK_SECRET ?? '';
const TOKEN = /^[0-9a-f]{64}$/;

/** The request-log variants measured; `shipped` is the app's own configuration. */
function params() {
  const p = loggerParams({ logLevel: logging === 'none' ? 'warn' : 'info' });
  const shipped = p.pinoHttp.customLogLevel;
  if (logging === 'every') p.pinoHttp.customLogLevel = (req, res, err) => (shipped(req, res, err) === 'error' ? 'error' : 'info');
  let n = 0;
  if (logging === 'sampled') p.pinoHttp.customLogLevel = (req, res, err) => (shipped(req, res, err) === 'debug' && n++ % 100 === 0 ? 'info' : shipped(req, res, err));
  return p;
}

/** The trigger's shape: raw body, parsed body, caller address, headers; HMAC checked; an Accepted answer. */
class TriggerStub {
  trigger(req, res) {
    const token = req.body?.token;
    if (typeof token !== 'string' || !TOKEN.test(token)) throw new Error('the bench sends a 64-hex token');
    if (checkSignature(SECRET, req.rawBody ?? Buffer.alloc(0), req.headers[SIGNATURE_HEADER]) !== 'valid') throw new Error('bad signature in the bench');
    if (req.ip === undefined || res === undefined) throw new Error('no caller address');
    const id = randomUUID();
    const base = `/api/v1/executions/${id}`;
    return { executionId: id, status: 'dispatched', links: { execution: base, output: `${base}/output`, events: `${base}/events` } };
  }
}
/** A management read: a UUID route parameter and a validated query DTO, a server-sized answer. */
class ManagementStub {
  get(id, q) {
    return { id, name: 'bench', status: 'online', agentVersion: '1.0.0', protocolVersion: 2, lastSeenAt: new Date(), createdAt: new Date(), limit: q.limit ?? 50, labels: [], hostname: 'bench-host' };
  }
}

const method = (cls, name, ...decorators) => {
  const d = Object.getOwnPropertyDescriptor(cls.prototype, name);
  for (const dec of decorators) dec(cls.prototype, name, d);
};
Controller('webhooks')(TriggerStub);
method(TriggerStub, 'trigger', Post('script_execute'), HttpCode(202));
Req()(TriggerStub.prototype, 'trigger', 0);
Res({ passthrough: true })(TriggerStub.prototype, 'trigger', 1);
Reflect.defineMetadata('design:paramtypes', [Object, Object], TriggerStub.prototype, 'trigger');
Controller('servers')(ManagementStub);
method(ManagementStub, 'get', Get(':id'));
Param('id', uuidPipe)(ManagementStub.prototype, 'get', 0);
Query()(ManagementStub.prototype, 'get', 1);
Reflect.defineMetadata('design:paramtypes', [String, ListQueryDto], ManagementStub.prototype, 'get');

class StubModule {}
// `absent`: no request logger at all (Nest's console logger), to see what pino-http itself costs.
Module({ imports: logging === 'absent' ? [] : [LoggerModule.forRoot(params())], controllers: [TriggerStub, ManagementStub] })(StubModule);

let app;
if (framework === 'express') {
  app = await NestFactory.create(StubModule, { bufferLogs: true, bodyParser: false });
  app.set('trust proxy', false);
  app.disable('x-powered-by');
  app.use(
    express.json({
      limit: BODY_LIMIT,
      verify: (req, _res, buf) => {
        req.rawBody = buf;
      },
    }),
  );
  const dir = statics === 'static' ? dashboardDir() : null;
  if (statics === 'static' && !dir) throw new Error('the dashboard is not built: cannot serve its static files');
  if (dir) app.use(...dashboardMiddleware(dir));
} else if (framework === 'fastify') {
  const from = process.env.HTTP_STACK_FASTIFY;
  const { FastifyAdapter } = await import(pathToFileURL(path.join(from, 'node_modules/@nestjs/platform-fastify/index.js')).href);
  // Fastify's own static-file plugin is another package; its routes would not touch /api paths.
  app = await NestFactory.create(StubModule, new FastifyAdapter({ bodyLimit: BODY_LIMIT, trustProxy: false }), { bufferLogs: true, rawBody: true });
} else throw new Error(`unknown framework ${framework}`);
if (logging !== 'absent') app.useLogger(app.get(Logger));
app.setGlobalPrefix('api/v1');
app.useGlobalPipes(validationPipe());
app.useGlobalFilters(new AllExceptionsFilter());
await app.listen(Number(port), '127.0.0.1');
process.stderr.write('listening\n');
// A normal exit, so that a --cpu-prof profile gets written.
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(0));
