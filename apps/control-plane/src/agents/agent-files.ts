import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The repository (or install) root seen from this file, in the build
 * (dist/apps/control-plane/apps/control-plane/src/agents) or the sources (apps/control-plane/src/agents).
 */
export function installRoot(): string {
  let dir = import.meta.dirname;
  for (let i = 0; i < 8; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'apps'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return process.cwd();
}

/** The files a server owner downloads to install the agent: name -> where it is, first found wins. */
export function agentFileCandidates(root = installRoot()): Record<string, string[]> {
  const dist = path.join(root, 'dist/agent');
  return {
    'devpilot-agent.cjs': [path.join(dist, 'devpilot-agent.cjs')],
    'devpilot-agent.service': [path.join(dist, 'devpilot-agent.service'), path.join(root, 'apps/agent/systemd/devpilot-agent.service')],
    'install.sh': [path.join(dist, 'install.sh'), path.join(root, 'apps/agent/install.sh')],
  };
}

export function findAgentFile(name: string, root?: string): string | null {
  return agentFileCandidates(root)[name]?.find((f) => existsSync(f)) ?? null;
}
