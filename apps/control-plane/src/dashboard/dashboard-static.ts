import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Paths the single-page app must never shadow. */
const SERVER_PATHS = /^\/(api|health|metrics|agent|socket\.io|dashboard-io)(\/|$)/;

/**
 * The dashboard's pages: scripts and styles only from this origin (the build has no inline
 * script), never framed, connections only back to this origin (the API and its sockets).
 */
const dashboardCsp = helmet.contentSecurityPolicy({
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    scriptSrcAttr: ["'none'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    fontSrc: ["'self'"],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
});

/** Where `npm run build:dashboard` puts the app, seen from the built main.js or from the sources. */
export function dashboardDir(): string | null {
  const candidates = [
    path.resolve(import.meta.dirname, '../../../../../dashboard'), // dist/apps/control-plane/apps/control-plane/src/dashboard
    path.resolve(process.cwd(), 'dist/dashboard'),
  ];
  return candidates.find((d) => existsSync(path.join(d, 'index.html'))) ?? null;
}

/**
 * Serves the dashboard: its hashed assets with a long cache, and index.html for every other
 * GET that is not an API path, so each view's URL can be shared or reloaded.
 */
export function dashboardMiddleware(dir: string, opts: { serveSourceMaps: boolean }): express.RequestHandler[] {
  const index = path.join(dir, 'index.html');
  return [
    (req: Request, res: Response, next: NextFunction) => {
      if (SERVER_PATHS.test(req.path)) return next();
      // The build's source maps only when asked for (DEVPILOT_SERVE_SOURCE_MAPS): they would publish the sources.
      if (!opts.serveSourceMaps && req.path.endsWith('.map')) return void res.status(404).end();
      dashboardCsp(req, res, next);
    },
    express.static(dir, {
      index: false,
      setHeaders: (res, file) => {
        res.setHeader('Cache-Control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    }),
    (req: Request, res: Response, next: NextFunction) => {
      if ((req.method !== 'GET' && req.method !== 'HEAD') || SERVER_PATHS.test(req.path)) return next();
      res.setHeader('Cache-Control', 'no-cache');
      res.sendFile(index);
    },
  ];
}
