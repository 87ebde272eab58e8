import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError, readTokenFile, type TokenSource } from './config.js';

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/** The token from a source that is not the environment (which `withoutTokenInEnvironment` handles first). */
export function readToken(source: Exclude<TokenSource, { kind: 'environment' }>): string {
  switch (source.kind) {
    case 'argument':
      return source.token;
    case 'file': {
      try {
        return readTokenFile(source.path);
      } finally {
        // A hand-over file written by the re-execution below: read once, then gone.
        if (source.removeAfterRead) rmSync(dirname(source.path), { recursive: true, force: true });
      }
    }
    case 'fd': {
      let token: string;
      try {
        token = readFileSync(source.fd, 'utf8').trim();
      } catch (err) {
        throw new ConfigError(`cannot read the agent token from file descriptor ${source.fd}: ${(err as Error).message}`);
      } finally {
        try {
          closeSync(source.fd);
        } catch {
          // Already closed.
        }
      }
      if (!token) throw new ConfigError(`no agent token on file descriptor ${source.fd}`);
      return token;
    }
  }
}

/**
 * A token given in the environment stays readable in /proc/<pid>/environ for the life of the
 * process, by every process of the same user (a script, when the agent runs scripts as itself):
 * deleting the variable does not clear it. So the agent replaces itself with a copy started
 * without it. With `process.execve` (Node 22.15+) the process image is replaced (same pid) and the
 * token goes through a 0600 file in a 0700 folder that the new image reads and removes at once.
 * Without it, a child is started with the token on a pipe (fd 3) and this process stays as a
 * thin supervisor passing signals and the exit code on; its own environment still holds the
 * token, which the caller is told to log.
 */
export function withoutTokenInEnvironment(token: string): 'supervising' {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DEVPILOT_AGENT_TOKEN;
  const args = [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)];
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve === 'function') {
    const dir = mkdtempSync(join(tmpdir(), 'devpilot-agent-token-'));
    const file = join(dir, 'token');
    writeFileSync(file, token, { mode: 0o600, flag: 'wx' });
    try {
      execve(process.execPath, [process.execPath, ...args], { ...env, DEVPILOT_AGENT_TOKEN_FILE: file, DEVPILOT_AGENT_TOKEN_FILE_ONCE: '1' });
    } catch {
      // Could not replace the process: the hand-over file goes, and the child below takes over.
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const child = spawn(process.execPath, args, { env: { ...env, DEVPILOT_AGENT_TOKEN_FD: '3', DEVPILOT_AGENT_SUPERVISOR_PID: String(process.pid) }, stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
  const pipe = child.stdio[3] as NodeJS.WritableStream;
  // The child closes its end once it has read the token: an error there afterwards means nothing.
  pipe.on('error', () => undefined);
  pipe.end(token);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
  child.once('exit', (code, signal) => process.exit(code ?? (signal === 'SIGKILL' ? 137 : 1)));
  child.once('error', (err) => {
    process.stderr.write(`devpilot-agent: could not re-execute without the token in the environment: ${err.message}\n`);
    process.exit(1);
  });
  return 'supervising';
}
