import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const BENCH_DIR = path.join(ROOT, 'bench');
export const CONTROL_PLANE_MAIN = path.join(ROOT, 'dist/apps/control-plane/apps/control-plane/src/main.js');
export const EMBEDDED_PG_MODULE = path.join(ROOT, 'dist/apps/control-plane/apps/control-plane/src/database/embedded-postgres.js');
export const AGENT_BUNDLE = path.join(ROOT, 'dist/agent/devpilot-agent.cjs');
export const PROFILE_DIR = path.join(BENCH_DIR, 'profiles');
