import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './control-plane.js';

/**
 * Keeps the figures of a fault or abuse test (how often it was tried, what came back) in
 * test-artifacts/figures/<name>.json, for the "Faults and abuse" table in README.md.
 */
export function recordFigure(name: string, figures: Record<string, unknown>): void {
  const dir = path.join(ROOT, 'test-artifacts', 'figures');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify({ name, at: new Date().toISOString(), ...figures }, null, 2)}\n`);
}
