import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import { loadConfig } from './config/app-config.js';

export const API_PREFIX = 'api/v1';

/** Every route is under /api/v1 except these (probes, metrics, the agent's files at the URL its install command uses). */
export function setApiPrefix(app: INestApplication): void {
  app.setGlobalPrefix(API_PREFIX, { exclude: ['health', 'health/live', 'metrics', 'agent/:file'] });
}

/** The OpenAPI document of an application whose routes and prefix are set up. */
export function openApiDocument(app: INestApplication): OpenAPIObject {
  const doc = new DocumentBuilder()
    .setTitle('Devpilot script webhooks')
    .setDescription('Turn a saved script on a server into a secure HTTP endpoint.')
    .setVersion('1')
    // Not addBearerAuth(): it declares `bearerFormat: JWT`, and API keys are opaque `dp_...` strings.
    .addSecurity('bearer', { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer dp_...`' })
    .build();
  return SwaggerModule.createDocument(app, doc);
}

/**
 * The same document without a database or a listening server: Nest's preview mode reads the module
 * and route metadata without creating any provider (no connection, no sweeps).
 */
export async function standaloneOpenApiDocument(): Promise<OpenAPIObject> {
  const config = loadConfig({});
  const app = await NestFactory.create(AppModule.forRoot(config, 'postgres://unused'), { preview: true, logger: false, abortOnError: false });
  setApiPrefix(app);
  try {
    return openApiDocument(app);
  } finally {
    await app.close();
  }
}
