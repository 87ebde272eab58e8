import express, { type NextFunction, type Request, type Response } from 'express';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Paths the single-page app must never shadow. */
const SERVER_PATHS = /^\/(api|health|metrics|agent|socket\.io)(\/|$)/;

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
export function dashboardMiddleware(dir: string): express.RequestHandler[] {
  const index = path.join(dir, 'index.html');
  return [
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
