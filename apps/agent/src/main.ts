import { Agent, type AgentExit } from './agent.js';
import { ConfigError, parseCli, readCaFile, USAGE } from './config.js';
import { createLogger, tolerateClosedOutput, writeStderr } from './logger.js';
import { ScriptUsers } from './script-users.js';
import { removeDeadAgentsScripts } from './temp-files.js';
import { readToken, withoutTokenInEnvironment } from './token.js';
import { AGENT_VERSION } from './version.js';

// The CLI only: parse the command line, start the agent, map its end to an exit code.
function main(): void {
  tolerateClosedOutput();
  let command;
  let ca: string | undefined;
  let token = '';
  let users: ScriptUsers | undefined;
  try {
    command = parseCli(process.argv.slice(2), process.env);
    if (command.kind === 'run') {
      const { tokenSource, runAsDefault, allowRunAs } = command.config;
      if (tokenSource.kind === 'environment') return void withoutTokenInEnvironment(tokenSource.token);
      token = readToken(tokenSource);
      if (command.config.caFile) ca = readCaFile(command.config.caFile);
      users = ScriptUsers.detect(runAsDefault, allowRunAs);
      if (users.switches && !users.exists(runAsDefault)) {
        throw new ConfigError(
          `scripts run as the user "${runAsDefault}", which does not exist on this machine: create it ` +
            `(useradd --system --user-group --create-home --home-dir /var/lib/${runAsDefault} --shell /usr/sbin/nologin ${runAsDefault}) ` +
            'or name another with --run-as-default',
        );
      }
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    writeStderr(`devpilot-agent: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (command.kind === 'help') return void process.stdout.write(USAGE);
  if (command.kind === 'version') return void process.stdout.write(`${AGENT_VERSION}\n`);

  const { config } = command;
  const log = createLogger('devpilot-agent', config.logLevel);
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { err }));
  process.on('uncaughtException', (err) => log.error('uncaught exception', { err }));

  const removed = removeDeadAgentsScripts(undefined, users!.setpriv ? { setpriv: users!.setpriv, uids: users!.allowedUids() } : undefined);
  if (removed.length) log.info('removed script files left by agents that were killed', { folders: removed });

  const supervisor = process.env.DEVPILOT_AGENT_SUPERVISOR_PID;
  if (supervisor) {
    // Node has no parent-death signal: a supervisor killed outright (SIGKILL) must not leave this
    // agent running on its own, so it goes the way its supervisor went (no cleanup either).
    setInterval(() => {
      if (process.ppid !== Number(supervisor)) process.kill(process.pid, 'SIGKILL');
    }, 250).unref();
    log.warn('the agent token came in the environment and this Node.js cannot re-execute in place (process.execve needs Node 22.15+): it stays in the environment of the supervising process; give it with --token-file instead', { supervisorPid: Number(supervisor) });
  }
  if (users!.switches) {
    log.info('scripts run as another user', { runsScriptsAs: users!.runsScriptsAs, allowRunAs: users!.allow });
  } else {
    log.warn('this agent cannot switch users: scripts run as the agent itself, and can read what it can (its files, its processes)', {
      runsScriptsAs: users!.self,
      why: users!.cannotSwitchBecause,
    });
  }
  const agent = new Agent({ ...config, token, ca, users, logger: log });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    log.info('signal received: stopping', { signal, graceMs: config.shutdownGraceMs });
    void agent.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  void agent.exited.then((exit) => {
    if (exit.code === 2) writeStderr(`devpilot-agent: ${refusalHelp(exit)}\n`);
    process.exit(exit.code);
  });
  log.info('starting', { version: AGENT_VERSION, url: config.url, concurrency: config.concurrency, caFile: config.caFile });
  agent.start();
}

function refusalHelp({ refusal, reason = '' }: AgentExit): string {
  if (refusal === 'UNAUTHORIZED') {
    return 'the control plane refused the agent token (unauthorized). Check DEVPILOT_AGENT_TOKEN / --token: copy the token shown when the server was created, or rotate it in the dashboard.';
  }
  return `the control plane refused this agent: ${reason}. Install the agent version the control plane serves at /agent/devpilot-agent.cjs.`;
}

main();
