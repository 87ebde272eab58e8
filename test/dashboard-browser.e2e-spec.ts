import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { type ControlPlane, ROOT, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { triggerWith } from './support/webhook-fixtures.js';

/**
 * The whole path as a new user walks it, in Debian's headless Chromium: sign in with the admin
 * key, write a script, put a webhook on the local server, call it over HTTP, watch the output
 * arrive while the script still runs, then find the run in the history tagged `webhook`.
 */
const ARTIFACTS = path.join(ROOT, 'test-artifacts');

// Eight lines half a second apart (about 4 s in all), one in colour, one on stderr.
const SCRIPT = [
  'echo "step 1: starting"',
  'sleep 0.5',
  "printf '\\033[32mstep 2: green\\033[0m\\n'",
  'sleep 0.5',
  'echo "step 3: to stderr" >&2',
  'sleep 0.5',
  'for i in 4 5 6 7; do echo "step $i"; sleep 0.5; done',
  // Multi-byte UTF-8: the feed's bytes reach the page exactly.
  'echo "step 8: done ✓ café"',
].join('\n');

let db: TestDatabase;
let cp: ControlPlane;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, 'dist/dashboard/index.html'))) throw new Error('the dashboard is not built: npm run build');
  db = await createTestDatabase();
  // One server (the local agent's) fills the workspace: the dashboard must show that refusal.
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_LOCAL_AGENT: 'true', DEVPILOT_MAX_SERVERS_PER_WORKSPACE: '1' } });
  const api = new Api(cp.url, cp.adminKey);
  await waitFor(
    'the local agent online',
    async () => ((await api.get('/api/v1/servers')).body.items as { name: string; status: string }[]).some((s) => s.name === 'local' && s.status === 'online'),
    30_000,
  );
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(20_000);
});

afterAll(async () => {
  await browser?.close();
  await cp?.stop();
  await db?.drop();
});

const byTestId = (id: string) => page.getByTestId(id);

/** An empty list shows its create form at once; otherwise its "New" button opens it. */
async function openForm(button: string, form: string): Promise<void> {
  await byTestId(form).or(byTestId(button)).first().waitFor();
  if (!(await byTestId(form).isVisible())) await byTestId(button).click();
  await byTestId(form).waitFor();
}

describe('the dashboard in a browser', () => {
  it('sign in, script, webhook, a real call, live output, status and history', async () => {
    try {
      await walkThrough();
    } catch (e) {
      // What the page showed when it failed, for whoever reads the CI run.
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => undefined);
      throw new Error(`${(e as Error).message}\n--- page text at failure:\n${(await page.locator('body').innerText().catch(() => '')).slice(0, 3000)}`, { cause: e });
    }
  });
});

describe('lists and limits in the dashboard', () => {
  it('pages through a long version history, and says why a full workspace refuses a server', async () => {
    const api = new Api(cp.url, cp.adminKey);
    const script = (await api.post('/api/v1/scripts', { name: 'long-history', content: 'echo 1' })).body as { id: string };
    for (let v = 2; v <= 55; v++) expect((await api.patch(`/api/v1/scripts/${script.id}`, { content: `echo ${v}` })).status).toBe(200);
    await openSignedIn(`${cp.url}/scripts/${script.id}/versions`);
    const rows = byTestId('version-row');
    await waitFor('the first page of versions', async () => (await rows.count()) === 50);
    await byTestId('load-more-versions').click();
    await waitFor('the older versions', async () => (await rows.count()) === 55);
    await expect(byTestId('load-more-versions').count()).resolves.toBe(0);
    await expect(rows.first().textContent()).resolves.toContain('v55');
    await expect(rows.last().textContent()).resolves.toContain('v1');

    await openSignedIn(`${cp.url}/servers`);
    await byTestId('server-name-input').fill('one-too-many');
    await byTestId('server-create-submit').click();
    const notice = byTestId('server-create-form').getByTestId('error-notice');
    await notice.waitFor();
    await expect(notice.textContent()).resolves.toMatch(/DEVPILOT_MAX_SERVERS_PER_WORKSPACE[\s\S]*QUOTA_EXCEEDED/);
  });
});

/** Opens `url`, signing in with the admin key first when the session has none. */
async function openSignedIn(url: string): Promise<void> {
  await page.goto(url);
  const signIn = byTestId('signin-api-key');
  await signIn.or(byTestId('nav-scripts')).first().waitFor();
  if (await signIn.isVisible()) {
    await signIn.fill(cp.adminKey);
    await byTestId('signin-submit').click();
    await byTestId('nav-scripts').waitFor();
    await page.goto(url);
  }
}

async function walkThrough(): Promise<void> {
  // Sign in with the admin key.
  await page.goto(cp.url);
  await byTestId('signin-api-key').fill(cp.adminKey);
  await byTestId('signin-submit').click();

  // A new script: a new workspace's scripts page explains what a script is and shows the form.
  await byTestId('nav-scripts').click();
  await byTestId('scripts-empty').waitFor();
  await openForm('script-new', 'script-create-form');
  const form = byTestId('script-create-form');
  await form.getByTestId('script-name-input').fill('deploy-demo');
  await form.getByTestId('script-interpreter-select').selectOption('bash');
  await form.getByTestId('script-content-input').fill(SCRIPT);
  await form.getByTestId('script-create-submit').click();
  await page.waitForURL(/\/scripts\/[0-9a-f-]{36}$/);
  const scriptId = page.url().split('/').pop()!;

  // A webhook on the local server; its token is shown on the card.
  await byTestId('tab-webhooks').click();
  await byTestId('webhooks-empty').waitFor();
  await openForm('webhook-new', 'webhook-create-form');
  const hookForm = byTestId('webhook-create-form');
  await hookForm.getByTestId('webhook-name-input').fill('ci-deploy');
  await hookForm.getByTestId('webhook-server-select').selectOption({ label: 'local (online)' });
  await hookForm.getByTestId('webhook-create-submit').click();
  const card = byTestId('webhook-row').filter({ hasText: 'ci-deploy' });
  const token = (await card.getByTestId('webhook-token').textContent())?.trim() ?? '';
  expect(token).toMatch(/^\S{64}$/);

  // A real HTTP call, as a CI pipeline would make it.
  const call = await triggerWith(cp.url, token);
  expect(call.status).toBe(202);
  const executionId = call.body.executionId as string;

  // Open it from the history and watch the lines arrive while it still runs.
  await byTestId('nav-executions').click();
  await page.locator(`[data-testid="execution-row"][data-execution-id="${executionId}"]`).getByTestId('execution-link').click();
  await page.waitForURL(`**/executions/${executionId}`);
  // The status shown at the moment the first line is, read in the page in one go.
  // Polled with page.evaluate (the DevTools protocol's own evaluation): the dashboard's CSP forbids
  // eval, which waitForFunction's in-page polling uses.
  const firstSeen = await waitFor(
    'the first line',
    async () =>
      (await page.evaluate<string | null>(`(() => {
        const line = [...document.querySelectorAll('[data-testid="output-line"]')].find((l) => l.textContent.includes('step 1: starting'));
        return line ? document.querySelector('[data-testid="status-badge"]').getAttribute('data-status') : null;
      })()`)) ?? undefined,
    20_000,
  );
  expect(['dispatched', 'running']).toContain(firstSeen);

  // The run ends: succeeded, exit 0, every line, colour and stderr told apart.
  await page.locator('[data-testid="status-badge"][data-status="succeeded"]').waitFor({ timeout: 20_000 });
  await expect(byTestId('execution-exit-code').textContent()).resolves.toBe('0');
  await page.locator('[data-testid="output-line"]', { hasText: 'step 8: done' }).waitFor();
  const lines = await byTestId('output-line').evaluateAll((els) =>
    els.map((e) => ({ text: e.querySelector('.txt')?.textContent, stream: e.getAttribute('data-stream'), coloured: !!e.querySelector('[class*="ansi-green"]') })),
  );
  expect(lines.map((l) => l.text)).toEqual([
    'step 1: starting',
    'step 2: green',
    'step 3: to stderr',
    'step 4',
    'step 5',
    'step 6',
    'step 7',
    'step 8: done ✓ café',
  ]);
  expect(lines.find((l) => l.text === 'step 3: to stderr')?.stream).toBe('stderr');
  expect(lines.filter((l) => l.stream === 'stderr')).toHaveLength(1);
  expect(lines.find((l) => l.text === 'step 2: green')?.coloured).toBe(true);
  await expect(byTestId('output-pane').getAttribute('data-lines')).resolves.toBe('8');
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'execution-page.png'), fullPage: true });

  // The history: succeeded, tagged as a webhook call with the webhook's name.
  await byTestId('nav-executions').click();
  const row = page.locator(`[data-testid="execution-row"][data-execution-id="${executionId}"]`);
  await row.getByTestId('execution-row-status').and(page.locator('[data-status="succeeded"]')).waitFor();
  const tag = row.getByTestId('trigger-tag');
  await expect(tag.getAttribute('data-trigger')).resolves.toBe('webhook');
  await expect(tag.textContent()).resolves.toContain('ci-deploy');

  // The script's own history (its Executions tab) lists the same run.
  await page.goto(`${cp.url}/scripts/${scriptId}`);
  await byTestId('tab-executions').click();
  await page.locator(`[data-testid="execution-row"][data-execution-id="${executionId}"]`).waitFor();
}
