// Replaced at bundle time by apps/agent/build.mjs (esbuild `define`) with the version in package.json.
declare const __DEVPILOT_AGENT_VERSION__: string | undefined;

/** The agent's own version, sent in the handshake and printed by `--version`. */
export const AGENT_VERSION: string =
  typeof __DEVPILOT_AGENT_VERSION__ === 'string' ? __DEVPILOT_AGENT_VERSION__ : '0.0.0-dev';
