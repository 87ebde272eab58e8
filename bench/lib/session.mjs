// One scenario's stack: a fresh database, a control plane on it, and whatever else it starts.
import { MiB } from './util.mjs';
import { createDatabase } from './postgres.mjs';
import { startAgent, startControlPlane } from './stack.mjs';

export async function openStack(ctx, name, { cpEnv, cpNodeArgs } = {}) {
  const db = await createDatabase(ctx.pg.url);
  let cp;
  try {
    cp = await startControlPlane({ databaseUrl: db.url, label: `cp-${name}`, profile: ctx.profile, env: cpEnv, nodeArgs: cpNodeArgs });
  } catch (e) {
    await db.drop().catch(() => undefined);
    throw e;
  }
  const procs = [cp.proc];
  let closed = false;
  const stack = {
    db,
    cp,
    api: cp.api,
    procs,
    track(proc) {
      procs.push(proc);
      return proc;
    },
    agent(server, opts = {}) {
      return startAgent(cp, server, { label: `agent-${name}`, profile: ctx.profile, ...opts }).then((p) => stack.track(p));
    },
    /** Peak RSS of every process of this stack so far (kernel high-water mark). */
    memory() {
      return procs.map((p) => {
        p.memory();
        return { process: p.name.endsWith(`-${name}`) ? p.name.slice(0, -name.length - 1) : p.name, pid: p.pid, peakRssMiB: Math.round(p.peak / MiB) };
      });
    },
    async close() {
      if (closed) return stack.lastMemory;
      closed = true;
      stack.lastMemory = stack.memory();
      // Clients first, the control plane last, so it writes its profile after their load ended.
      for (const p of [...procs].reverse()) await p.stop().catch(() => undefined);
      stack.lastMemory = stack.memory();
      await cp.stop().catch(() => undefined);
      await db.drop().catch((e) => ctx.log(`could not drop ${db.name}: ${e.message}`));
      return stack.lastMemory;
    },
  };
  return stack;
}
