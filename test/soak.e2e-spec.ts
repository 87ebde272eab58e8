// The short form of `npm run soak` (soak/run.mjs): 35 s of mixed triggers, streams and viewers
// against a real control plane, agent and PostgreSQL, with every process's memory sampled.
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './support/control-plane.js';

describe('soak (short form)', () => {
  it('35 s of steady mixed load: every run succeeds, output exact, no viewer gap, no error, memory within the bound', async () => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, SOAK_SECONDS: '35', SOAK_SAMPLE_MS: '1000', SOAK_RESULT_NAME: 'soak-e2e.json' };
    const child = spawn(process.execPath, [path.join(ROOT, 'soak/run.mjs')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`soak failed (exit ${code}):\n${output.slice(-6000)}`);
    const summary = JSON.parse(readFileSync(path.join(ROOT, 'test-artifacts/soak-e2e.json'), 'utf8'));
    expect(summary.ok).toBe(true);
    expect(summary.errors).toEqual([]);
    expect(summary.accepted.quick).toBeGreaterThan(100);
    expect(summary.accepted.stream).toBeGreaterThan(30);
    expect(summary.statuses).toEqual({ succeeded: summary.accepted.quick + summary.accepted.stream });
    expect(summary.viewer.streamsWatched).toBeGreaterThan(10);
    for (const m of Object.values(summary.memory) as { ok: boolean }[]) expect(m.ok).toBe(true);
  }, 240_000);
});
