import 'reflect-metadata';
import { pino } from 'pino';
import { ConfigError, loadConfig } from './config/app-config.js';
import { EmbeddedPostgres } from './database/embedded-postgres.js';
import { runMigrations } from './database/migrate.js';
import { createHttpApp } from './http-app.js';
import { describeListenAddress } from './common/proxy-trust.js';

// Before Nest (and its pino logger) exists, the same JSON lines from a plain pino instance.
const log = pino({ base: { pid: process.pid, context: 'Main' }, level: process.env.DEVPILOT_LOG_LEVEL || 'info' });

/** The oldest Node.js major the control plane supports (NestJS 12 and nestjs-pino require it). */
const NODE_FLOOR = 22;

async function main(): Promise<void> {
  const config = loadConfig();
  if (Number(process.versions.node.split('.')[0]) < NODE_FLOOR) {
    log.warn(`Node.js ${process.versions.node} is older than ${NODE_FLOOR}, the supported floor: NestJS 12 and nestjs-pino require ${NODE_FLOOR}+; use Node.js ${NODE_FLOOR} LTS`);
  }
  const embedded = config.databaseUrl ? null : new EmbeddedPostgres({ dataDir: config.dataDir, log: (m) => log.info(m) });
  let stopping = false;
  let app: Awaited<ReturnType<typeof createHttpApp>> | null = null;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: shutting down`);
    const force = setTimeout(() => {
      log.error('shutdown took over 30 s: stopping the database at once and exiting');
      embedded?.stopNow();
      process.exit(1);
    }, 30_000);
    force.unref();
    try {
      await app?.close();
    } finally {
      await embedded?.stop();
      process.exit(0);
    }
  };
  // `on`, not `once`: a Ctrl-C reaches this process both from the terminal and through `npm start`,
  // and a second signal without a handler would kill it mid-shutdown, leaving PostgreSQL running.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal));

  try {
    const databaseUrl = config.databaseUrl ?? (await embedded!.start());
    const ran = await runMigrations(databaseUrl);
    if (ran.length) log.info(`applied migrations: ${ran.join(', ')}`);
    app = await createHttpApp(config, databaseUrl);
    await app.listen(config.port, config.host);
  } catch (e) {
    await embedded?.stop();
    throw e;
  }
  log.info(`listening on ${describeListenAddress(app.getHttpServer().address())}`);
  process.stdout.write(
    `\nDevpilot is running: dashboard ${config.publicUrl}/ , API docs ${config.publicUrl}/api/docs\n` +
      `Database: ${embedded ? `embedded PostgreSQL in ${embedded.clusterDir}` : 'DATABASE_URL'}. ` +
      `Admin API key: ${config.adminApiKey ? 'DEVPILOT_ADMIN_API_KEY' : `${config.dataDir}/admin-api-key`}\n\n`,
  );
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`${e.message}\n`);
  } else {
    process.stderr.write(`devpilot failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
  }
  process.exit(1);
});
