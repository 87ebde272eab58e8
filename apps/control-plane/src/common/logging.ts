import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoggerService } from '@nestjs/common';
import type { Params } from 'nestjs-pino';
import type { AppConfig } from '../config/app-config.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The public trigger, with or without a token in its path (`/script_execute/{token}`) or a query.
 * Case-insensitive, as Express routes are.
 */
const TRIGGER_URL = /^\/api\/v1\/webhooks\/script_execute(?=[/?]|$)/i;
const PATH_TOKEN = /^(\/api\/v1\/webhooks\/script_execute\/).+$/i;
/** A webhook token's shape, wherever it is sent (a mistyped path is answered 404 and logged at info). */
const TOKEN_SHAPED = /[0-9a-f]{64}/gi;

/**
 * What a request line may say of a URL: on the trigger, neither what follows it in the path nor a
 * query; elsewhere, nothing shaped like a token.
 */
export function loggableUrl(url: string): string {
  if (!TRIGGER_URL.test(url)) return url.replace(TOKEN_SHAPED, '[redacted]');
  const q = url.indexOf('?');
  const path = (q < 0 ? url : url.slice(0, q)).replace(PATH_TOKEN, '$1[redacted]');
  return q < 0 ? path : `${path}?[redacted]`;
}

/**
 * The level of a request's "request completed" line. The trigger's own calls go at debug: each is
 * already recorded in its webhook's delivery log (rejections too), and a line per call would be a
 * second record of the busiest route, about 265 bytes each (over 20 GB a day at 1,000 calls/s).
 * Errors and 5xx are always logged, on every route.
 */
export function requestLogLevel(req: IncomingMessage, res: ServerResponse, err?: Error): 'error' | 'info' | 'debug' {
  if (err || res.statusCode >= 500) return 'error';
  return TRIGGER_URL.test(originalUrl(req)) ? 'debug' : 'info';
}

/** Express rewrites req.url inside routers; the URL as received stays in originalUrl. */
function originalUrl(req: IncomingMessage): string {
  return (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
}

/** Structured JSON logs; every line of a request carries its id. Secrets never reach a log line. */
export function loggerParams(config: AppConfig): Params {
  return {
    pinoHttp: {
      level: config.logLevel,
      genReqId: (req: IncomingMessage, res: ServerResponse) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('x-request-id', id);
        return id;
      },
      // Only what helps debugging: never headers (authorization, signatures) or bodies (tokens).
      serializers: {
        // remoteAddress is the peer (the proxy, behind one); clientAddress is the caller as resolved
        // through DEVPILOT_TRUST_PROXY, the address IP allowlists and rate limits see.
        req: (req: { id: string; method: string; url: string; remoteAddress?: string; raw?: { ip?: string } }) => ({
          id: req.id,
          method: req.method,
          url: loggableUrl(req.url),
          remoteAddress: req.remoteAddress,
          clientAddress: req.raw?.ip,
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      redact: { paths: ['*.authorization', '*.token', '*.apiKey', '*.agentToken', '*.hmacSecret', '*["x-webhook-signature"]'], censor: '[redacted]' },
      customLogLevel: requestLogLevel,
      autoLogging: { ignore: (req) => req.url === '/health/live' },
    },
  };
}

/** Nest's per-route startup lines (about 75 of them) would scroll the start banner away: debug only. */
const ROUTE_MAPPING_CONTEXTS = new Set(['RoutesResolver', 'RouterExplorer']);

/** The application logger, with Nest's route-mapping lines moved to debug. */
export class QuietRoutesLogger implements LoggerService {
  constructor(private readonly inner: LoggerService) {}

  log(message: unknown, ...rest: unknown[]): void {
    if (ROUTE_MAPPING_CONTEXTS.has(rest.at(-1) as string)) this.inner.debug?.(message, ...rest);
    else this.inner.log(message, ...rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.inner.error(message, ...rest);
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.inner.warn(message, ...rest);
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.inner.debug?.(message, ...rest);
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.inner.verbose?.(message, ...rest);
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    (this.inner.fatal ?? this.inner.error).call(this.inner, message, ...rest);
  }
}
