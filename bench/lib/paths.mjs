import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const BENCH_DIR = path.join(ROOT, 'bench');
export const PROFILE_DIR = path.join(BENCH_DIR, 'profiles');
/** Where the run's copy of the build lives (others may rebuild dist/ while the bench runs). */
export const SNAPSHOT_DIR = path.join(BENCH_DIR, '.dist');

export let DIST = path.join(ROOT, 'dist');
export let CONTROL_PLANE_MAIN;
export let EMBEDDED_PG_MODULE;
export let AGENT_BUNDLE;

/** Points every path at a build folder (dist/ or the run's snapshot of it). */
export function useDist(dir) {
  DIST = dir;
  CONTROL_PLANE_MAIN = path.join(dir, 'apps/control-plane/apps/control-plane/src/main.js');
  EMBEDDED_PG_MODULE = path.join(dir, 'apps/control-plane/apps/control-plane/src/database/embedded-postgres.js');
  AGENT_BUNDLE = path.join(dir, 'agent/devpilot-agent.cjs');
}
useDist(DIST);
