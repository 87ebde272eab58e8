import type { NestExpressApplication } from '@nestjs/platform-express';
import { NestFactory } from '@nestjs/core';
import { SwaggerModule } from '@nestjs/swagger';
import express from 'express';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module.js';
import { dashboardDir, dashboardMiddleware } from './dashboard/dashboard-static.js';
import { DevpilotIoAdapter } from './common/socket-io.adapter.js';
import { AllExceptionsFilter } from './common/all-exceptions.filter.js';
import { validationPipe } from './common/validation.js';
import type { AppConfig } from './config/app-config.js';
import { openApiDocument, setApiPrefix } from './openapi.js';

/** Builds the Nest application: body parsing, validation, errors, proxies, OpenAPI. */
export async function createHttpApp(config: AppConfig, databaseUrl: string): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config, databaseUrl), {
    bufferLogs: true,
    bodyParser: false,
  });
  app.useLogger(app.get(Logger));
  app.useWebSocketAdapter(new DevpilotIoAdapter(app));
  // X-Forwarded-For is believed only from the configured proxies; otherwise req.ip is the socket's.
  app.set('trust proxy', config.trustProxy.length ? config.trustProxy : false);
  app.disable('x-powered-by');
  app.use(
    express.json({
      limit: config.bodyLimitBytes,
      // The raw bytes as received: what an HMAC signature is computed over.
      verify: (req, _res, buf) => {
        (req as unknown as { rawBody: Buffer }).rawBody = buf;
      },
    }),
  );
  const dashboard = dashboardDir();
  if (dashboard) app.use(...dashboardMiddleware(dashboard));
  else app.get(Logger).warn('the dashboard is not built (npm run build:dashboard): serving the API only');
  setApiPrefix(app);
  app.useGlobalPipes(validationPipe());
  app.useGlobalFilters(new AllExceptionsFilter());

  SwaggerModule.setup('api/docs', app, () => openApiDocument(app), { jsonDocumentUrl: 'api/docs/openapi.json' });
  return app;
}
