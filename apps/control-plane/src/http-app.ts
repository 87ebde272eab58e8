import type { NestExpressApplication } from '@nestjs/platform-express';
import { asyncApiDocument } from '@app/protocol/asyncapi.js';
import { MAX_JSON_DEPTH } from '@app/protocol';
import { NestFactory } from '@nestjs/core';
import { SwaggerModule } from '@nestjs/swagger';
import express from 'express';
import helmet from 'helmet';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module.js';
import { dashboardDir, dashboardMiddleware } from './dashboard/dashboard-static.js';
import { createClusterAdapter, DevpilotIoAdapter } from './common/socket-io.adapter.js';
import { AllExceptionsFilter } from './common/all-exceptions.filter.js';
import { jsonTooDeep } from './common/json-depth.js';
import { QuietRoutesLogger } from './common/logging.js';
import { trustProxyWarnings, untrustedForwardingDetector, untrustedForwardingWarning } from './common/proxy-trust.js';
import { validationPipe } from './common/validation.js';
import type { AppConfig } from './config/app-config.js';
import { openApiDocument, setApiPrefix } from './openapi.js';

/** The public trigger, in both forms (token in the body or in the path). */
/** Charsets a trigger's JSON body may be in (what its token reader decodes). */
const TRIGGER_CHARSETS = new Set(['utf-8', 'utf8', 'utf-16le', 'utf-16']);
const TRIGGER_PATH = /^\/api\/v1\/webhooks\/script_execute(?:\/[^/]*)?\/?$/i;

/** Builds the Nest application: body parsing, validation, errors, proxies, OpenAPI. */
export async function createHttpApp(config: AppConfig, databaseUrl: string): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, databaseUrl), {
    bufferLogs: true,
    bodyParser: false,
  });
  const logger = app.get(Logger);
  app.useLogger(new QuietRoutesLogger(logger));
  const io = new DevpilotIoAdapter(app);
  io.cluster = await createClusterAdapter({ databaseUrl, redisUrl: config.redisUrl }, (err) => logger.error({ err }, 'socket.io cluster adapter error'));
  app.useWebSocketAdapter(io);
  // X-Forwarded-For is believed only from the configured proxies; otherwise req.ip is the socket's.
  app.set('trust proxy', config.trustProxy.length ? config.trustProxy : false);
  for (const warning of trustProxyWarnings(config.host, config.trustProxy)) logger.warn(warning, 'TrustProxy');
  const isTrusted = (app.getHttpAdapter().getInstance() as express.Express).get('trust proxy fn') as (address: string, hop: number) => boolean;
  const detectUntrusted = untrustedForwardingDetector(
    (address) => isTrusted(address, 0),
    (peer) => logger.warn(untrustedForwardingWarning(peer), 'TrustProxy'),
  );
  app.use((req: express.Request, _res: express.Response, next: express.NextFunction) => {
    detectUntrusted(req);
    next();
  });
  app.disable('x-powered-by');
  // Every answer: no MIME sniffing, never framed, no Referer to other sites. The dashboard's pages
  // add their CSP (dashboard-static); the API docs page keeps Swagger UI's inline scripts.
  app.use(
    helmet({
      contentSecurityPolicy: false,
      frameguard: { action: 'deny' },
      referrerPolicy: { policy: 'no-referrer' },
      crossOriginEmbedderPolicy: false,
      hsts: false,
    }),
  );
  // The trigger takes any body as raw bytes (a sender's own payload: JSON, form-encoded, empty):
  // what a signature covers, and what the trigger itself parses when the token is in it. Every
  // other route takes JSON, refused before it is parsed when nested deeper than any route needs
  // (what makes parsing and validating a body expensive). Both keep the same limit (413 beyond it).
  const triggerBody = express.raw({ type: () => true, limit: config.bodyLimitBytes });
  const jsonBody = express.json({
    limit: config.bodyLimitBytes,
    verify: (req, _res, buf) => {
      if (jsonTooDeep(buf, MAX_JSON_DEPTH)) throw Object.assign(new Error('JSON body nested too deep'), { type: 'entity.too.deep', status: 400 });
      (req as unknown as { rawBody: Buffer }).rawBody = buf;
    },
  });
  app.use((req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (!TRIGGER_PATH.test(req.path)) return jsonBody(req, res, next);
    // Raw bytes keep their charset: a JSON body in one the trigger cannot read is refused (415) here,
    // as the JSON parser refuses it on every other route.
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (charset && !TRIGGER_CHARSETS.has(charset)) {
      return next(Object.assign(new Error(`unsupported charset "${charset}"`), { status: 415, type: 'charset.unsupported' }));
    }
    triggerBody(req, res, (err?: unknown) => {
      const body: unknown = req.body;
      if (Buffer.isBuffer(body)) (req as unknown as { rawBody: Buffer }).rawBody = body;
      req.body = undefined;
      next(err);
    });
  });
  const dashboard = dashboardDir();
  if (dashboard) app.use(...dashboardMiddleware(dashboard, { serveSourceMaps: config.serveSourceMaps }));
  else app.get(Logger).warn('the dashboard is not built (npm run build:dashboard): serving the API only');
  setApiPrefix(app);
  app.useGlobalPipes(validationPipe());
  app.useGlobalFilters(new AllExceptionsFilter());

  // Beside the OpenAPI document: the socket.io protocols (/agent, /dashboard), from the same schemas both sides validate with.
  const asyncApi = asyncApiDocument();
  const http = app.getHttpAdapter();
  http.get('/api/docs/asyncapi.json', (_req: unknown, res: unknown) => {
    http.reply(res, asyncApi, 200);
  });
  SwaggerModule.setup('api/docs', app, () => openApiDocument(app), { jsonDocumentUrl: 'api/docs/openapi.json' });
  return app;
}
