// The ceiling for any Node agent: `count` runs of `bash <file>` with child_process.spawn, `concurrency`
// at a time, each read to the end. Prints {seconds, perSecond} as JSON.
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';

// The environment the agent gives a script when nothing else is configured (runner.ts scriptEnv).
const env = { PATH: process.env.PATH, HOME: homedir(), LANG: 'C.UTF-8' };

const [file, countArg, concurrencyArg] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);

function once() {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [file], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
    child.stdout.on('data', () => undefined);
    child.stderr.on('data', () => undefined);
    child.once('error', reject);
    child.once('close', resolve);
  });
}

let next = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < count) {
      next++;
      await once();
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(`${JSON.stringify({ seconds, perSecond: count / seconds })}\n`);
