#!/usr/bin/env node
// `npm run bench [-- scenario ...]`: starts everything itself, runs the scenarios, prints a table
// and writes bench/results.json. See the Benchmarks section of README.md.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BENCH_DIR, DIST, PROFILE_DIR, SNAPSHOT_DIR, useDist } from './lib/paths.mjs';
import { peerBinary } from './lib/peer.mjs';
import { pgServer } from './lib/postgres.mjs';
import { summariseProfile } from './lib/profile.mjs';
import { printTable } from './lib/report.mjs';
import { ensureScriptUser } from '../scripts/script-user.mjs';
import { ensureBuilt } from './lib/stack.mjs';
import { envInt, liveProcesses, nowMs } from './lib/util.mjs';

const SCENARIOS = ['trigger', 'first-byte', 'exec-rate', 'throughput', 'agents', 'fanout', 'prune', 'flood', 'cluster', 'http-stack'];
/** A plain `npm run bench`: the targets. http-stack measured a decision (README) and runs when named. */
const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s !== 'http-stack');

const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function killAll() {
  for (const p of liveProcesses) p.child.kill('SIGKILL');
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => {
  log('interrupted: stopping what the bench started');
  killAll();
  process.exit(130);
});

/** Many agent connections need many file descriptors: raise our soft limit (children inherit it). */
function raiseOpenFiles() {
  const set = (v) => spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${v}:${v}`], { stdio: 'ignore' }).status === 0;
  if (set(65_536)) return;
  const hard = spawnSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output=HARD'], { encoding: 'utf8' }).stdout?.trim();
  if (hard && hard !== 'unlimited') set(hard);
}

async function main() {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  if (args.includes('-h') || args.includes('--help')) {
    process.stdout.write(`usage: npm run bench [-- ${SCENARIOS.join('|')} ...]\nenvironment: see the Benchmarks section of README.md\n`);
    return;
  }
  const unknown = args.filter((a) => !SCENARIOS.includes(a));
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.join(', ')}`);
  const chosen = args.length ? SCENARIOS.filter((s) => args.includes(s)) : DEFAULT_SCENARIOS;

  raiseOpenFiles();
  ensureScriptUser();
  // BENCH_DIST: measure another build (say, an earlier commit's dist/) with this bench.
  const source = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : DIST;
  if (!process.env.BENCH_DIST) ensureBuilt(log);
  else if (!existsSync(source)) throw new Error(`BENCH_DIST ${source} does not exist`);
  // The whole run uses one build even if someone rebuilds dist/ meanwhile (node_modules still
  // resolve from the repository, as the snapshot lives inside it).
  rmSync(SNAPSHOT_DIR, { recursive: true, force: true });
  cpSync(source, SNAPSHOT_DIR, { recursive: true });
  useDist(SNAPSHOT_DIR);
  const pg = await pgServer(log);
  log(`PostgreSQL: ${pg.kind}`);
  const ctx = {
    log,
    pg,
    peer: peerBinary(log),
    profile: process.env.BENCH_PROFILE === '1',
    rounds: envInt('BENCH_ROUNDS', 3),
    durationS: envInt('BENCH_DURATION_S', 5),
    warmupS: envInt('BENCH_WARMUP_S', 1),
    drainTimeoutMs: envInt('BENCH_DRAIN_TIMEOUT_S', 120) * 1000,
    agentConcurrency: envInt('BENCH_AGENT_CONCURRENCY', 4),
    connectionLevels: (process.env.BENCH_CONNECTIONS || '10,100').split(',').map(Number),
    /** Monotonic [from, to] ms of the measured load: profiles are summarised over these only. */
    windows: [],
    async window(fn) {
      const from = nowMs();
      try {
        return await fn();
      } finally {
        ctx.windows.push([from, nowMs()]);
      }
    },
  };
  if (!ctx.peer.bin) log(ctx.peer.why);
  const started = Date.now();
  const results = [];
  const profilesBefore = new Set(existsSync(PROFILE_DIR) ? readdirSync(PROFILE_DIR) : []);
  try {
    for (const name of chosen) {
      const mod = (await import(`./scenarios/${name}.mjs`)).default;
      log(`== ${name}: ${mod.title}`);
      const t0 = Date.now();
      try {
        const r = await mod.run(ctx);
        results.push({ scenario: name, title: mod.title, seconds: Math.round((Date.now() - t0) / 1000), ...r });
      } catch (e) {
        log(`${name} failed: ${e.stack ?? e}`);
        results.push({ scenario: name, title: mod.title, skipped: `failed: ${String(e.message ?? e).split('\n')[0].slice(0, 200)}`, error: String(e.stack ?? e).slice(0, 4000) });
      }
    }
  } finally {
    killAll();
    await pg.stop();
  }

  let profiles;
  if (ctx.profile && existsSync(PROFILE_DIR)) {
    profiles = readdirSync(PROFILE_DIR)
      .filter((f) => f.endsWith('.cpuprofile') && !profilesBefore.has(f))
      .map((f) => summariseProfile(path.join(PROFILE_DIR, f), ctx.windows));
    for (const p of profiles) {
      log(`profile ${path.basename(p.file)}: ${p.windowMs} ms under load, ${p.idlePct}% idle; of the busy ${p.busyMs} ms:`);
      for (const f of p.topSelf.slice(0, 10)) log(`   ${String(f.pct).padStart(5)}%  ${f.frame}`);
      log(`   by package: ${p.byPackage.map((x) => `${x.pkg} ${x.pct}%`).join(', ')}`);
      log(`   by layer: ${p.byLayer.map((x) => `${x.layer} ${x.pct}%`).join(', ')}`);
    }
  }

  printTable(results);
  const out = {
    when: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, postgres: pg.kind },
    settings: { rounds: ctx.rounds, durationS: ctx.durationS, agentConcurrency: ctx.agentConcurrency, connectionLevels: ctx.connectionLevels },
    totalSeconds: Math.round((Date.now() - started) / 1000),
    results,
    profiles,
  };
  writeFileSync(path.join(BENCH_DIR, 'results.json'), `${JSON.stringify(out, null, 2)}\n`);
  log(`wrote bench/results.json (${out.totalSeconds} s)`);
  if (results.some((r) => r.skipped?.startsWith('failed'))) process.exitCode = 1;
}

main().catch((e) => {
  log(e.stack ?? String(e));
  killAll();
  process.exit(1);
});
