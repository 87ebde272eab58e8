import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { type ControlPlane, ROOT, startControlPlane } from './support/control-plane.js';
import { createScript, run, waitForStatus } from './support/executions.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { waitFor } from './support/processes.js';
import { createWebhook, triggerWith } from './support/webhook-fixtures.js';

/**
 * The dashboard as an operator uses it when an alert fires: what the header calls live (a webhook's
 * counters, a running script's output size) moves without a reload, every page passes axe-core
 * without a critical or serious violation, and nothing overflows sideways on a 390 px phone.
 */
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const AXE = path.join(ROOT, 'node_modules/axe-core/axe.min.js');
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let browser: Browser;
let page: Page;
let gates: string;
let localId: string;

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, 'dist/dashboard/index.html'))) throw new Error('the dashboard is not built: npm run build');
  // The script waits for files the test creates: it may run as another user, so the folder is world-readable.
  gates = await mkdtemp(path.join(os.tmpdir(), 'devpilot-gates-'));
  await chmod(gates, 0o755);
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url, env: { DEVPILOT_LOCAL_AGENT: 'true' } });
  api = new Api(cp.url, cp.adminKey);
  localId = await waitFor(
    'the local agent online',
    async () => ((await api.get('/api/v1/servers')).body.items as { id: string; name: string; status: string }[]).find((s) => s.name === 'local' && s.status === 'online')?.id,
    30_000,
  );
  browser = await launchChromium();
  // axe-core is injected as a script: the dashboard's CSP (script-src 'self') would block it, so this
  // page ignores the CSP (test/dashboard-browser and hostile-handshake check the CSP itself).
  page = await browser.newPage({ viewport: DESKTOP, bypassCSP: true });
  page.setDefaultTimeout(20_000);
});

afterAll(async () => {
  await browser?.close();
  await cp?.stop();
  await db?.drop();
  if (gates) await rm(gates, { recursive: true, force: true });
});

const byTestId = (id: string) => page.getByTestId(id);

/** Runs `fn`; on failure saves a screenshot named `name` and adds the page's text to the error. */
async function withScreenshot(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => undefined);
    throw new Error(`${(e as Error).message}\n--- page text at failure:\n${(await page.locator('body').innerText().catch(() => '')).slice(0, 3000)}`, { cause: e });
  }
}

// Page-side code is given as strings: the tests compile without the DOM library.
/** A mark on the window object: still there means the page was never reloaded. */
const markPage = () => page.evaluate('window.__noReload = true');
const stillSamePage = () => page.evaluate<boolean>('window.__noReload === true');

// Prints one line, then waits for the test: the page must show that line's size before more comes.
// 150 more lines give three-digit line numbers, which axe-core checks for contrast (one-digit ones are too short).
const LIVE_SCRIPT = (dir: string) =>
  [
    'echo "first line"',
    `while [ ! -e ${dir}/more ]; do sleep 0.1; done`,
    'for i in $(seq 1 150); do echo "line $i of the live output"; done',
    `while [ ! -e ${dir}/end ]; do sleep 0.1; done`,
    'echo "last line" >&2',
  ].join('\n');

describe('the dashboard: live counters and output size, accessibility, phone width', () => {
  let scriptId: string;
  let webhookId: string;
  let executionId: string;

  it('shows a webhook call in its counters and a running output growing, without a reload', async () => {
    const script = await createScript(api, LIVE_SCRIPT(gates), { name: 'live-output', interpreter: 'bash' });
    scriptId = script.id;
    const hook = await createWebhook(api, scriptId, { name: 'alert-hook', serverId: localId });
    webhookId = hook.id;

    await withScreenshot('live-failure', async () => {
      await page.goto(cp.url);
      await byTestId('signin-api-key').fill(cp.adminKey);
      await byTestId('signin-submit').click();
      // Straight to the script's webhooks tab by its URL (every view has one): the executions list the
      // sign-in lands on re-renders as runs arrive, and a click on it could land on a detached link.
      await byTestId('nav-scripts').waitFor();
      await page.goto(`${cp.url}/scripts/${scriptId}/webhooks`);
      const card = page.locator(`[data-testid="webhook-row"][data-webhook-id="${webhookId}"]`);
      await expect(card.getByTestId('webhook-call-count').textContent()).resolves.toBe('0');
      await expect(card.getByTestId('webhook-last-called').textContent()).resolves.toBe('never');
      await markPage();

      const call = await triggerWith(cp.url, hook.token);
      expect(call.status).toBe(202);
      executionId = call.body.executionId as string;
      await card.locator('[data-testid="webhook-call-count"]', { hasText: /^1$/ }).waitFor();
      await expect(card.getByTestId('webhook-last-called').textContent()).resolves.not.toBe('never');

      // To the run through the links a person would follow, still without a reload.
      await byTestId('nav-executions').click();
      await page.locator(`[data-testid="execution-row"][data-execution-id="${executionId}"]`).getByTestId('execution-link').click();
      await page.waitForURL(`**/executions/${executionId}`);
      await page.locator('[data-testid="output-line"]', { hasText: 'first line' }).waitFor();
      // "first line\n" is 11 bytes, shown while the script still waits.
      await page.locator('[data-testid="execution-output-bytes"]', { hasText: /^11 B/ }).waitFor();
      await expect(page.locator('[data-testid="status-badge"]').getAttribute('data-status')).resolves.toBe('running');

      await writeFile(path.join(gates, 'more'), '');
      await page.locator('[data-testid="output-line"]', { hasText: 'line 150 of the live output' }).waitFor();
      const grown = (await byTestId('execution-output-bytes').textContent()) ?? '';
      expect(grown).not.toMatch(/^11 B/);
      expect(grown).toMatch(/KiB|KB|\d{3,} B/);
      await expect(page.locator('[data-testid="status-badge"]').getAttribute('data-status')).resolves.toBe('running');
      expect(await stillSamePage()).toBe(true);
    });
  });

  it('asks "Keep running" or "Cancel execution", and the list shows the signal and the reason', async () => {
    await withScreenshot('cancel-failure', async () => {
      await byTestId('execution-cancel').click();
      await expect(byTestId('confirm-cancel').textContent()).resolves.toBe('Keep running');
      await expect(byTestId('confirm-ok').textContent()).resolves.toBe('Cancel execution');
      await byTestId('confirm-ok').click();
      const done = await waitForStatus(api, executionId, 'cancelled');
      expect(done.signal).toBe('SIGTERM');
      expect(done.exitCode).toBeNull();
      // A run cancelled before it started (its server has no agent) carries the reason the list shows.
      const offline = await api.post('/api/v1/servers', { name: 'build-box-with-a-rather-long-name' });
      expect(offline.status).toBe(201);
      const queued = await run(api, scriptId, offline.body.id as string);
      expect((await api.post(`/api/v1/executions/${queued.executionId}/cancel`)).status).toBe(202);
      const never = await waitForStatus(api, queued.executionId, 'cancelled');
      expect(never.error).toBeTruthy();

      await byTestId('nav-executions').click();
      const row = page.locator(`[data-testid="execution-row"][data-execution-id="${executionId}"]`);
      await row.locator('[data-testid="execution-row-exit"]', { hasText: 'SIGTERM' }).waitFor();
      const reason = page.locator(`[data-testid="execution-row"][data-execution-id="${queued.executionId}"]`).getByTestId('execution-row-reason');
      await expect(reason.textContent()).resolves.toBe(never.error);
      // The trigger filter offers what runs can have; the webhook chip names its webhook.
      const triggers = await byTestId('filter-trigger').locator('option').allTextContents();
      expect(triggers).toEqual(['Any trigger', 'webhook', 'manual']);
      await page.goto(`${cp.url}/executions?webhookId=${webhookId}`);
      await byTestId('filter-webhook-chip').filter({ hasText: 'alert-hook' }).waitFor();
    });
  });

  it('has no critical or serious axe-core violation and no sideways overflow at 390 px on every page', async () => {
    // Content for every page: a second script version (a diff), a secret; the offline server shows its install command.
    expect((await api.patch(`/api/v1/scripts/${scriptId}`, { content: `${LIVE_SCRIPT(gates)}\necho "version 2"` })).status).toBe(200);
    expect((await api.post('/api/v1/secrets', { name: 'DEPLOY_TOKEN', value: 'a-long-secret-value' })).status).toBe(201);

    const pages: [string, string, string][] = [
      ['executions', '/executions', 'execution-row'],
      ['execution', `/executions/${executionId}`, 'output-line'],
      ['scripts', '/scripts', 'script-row'],
      ['script-editor', `/scripts/${scriptId}`, 'script-edit-form'],
      ['script-versions', `/scripts/${scriptId}/versions`, 'diff-line'],
      ['script-webhooks', `/scripts/${scriptId}/webhooks`, 'webhook-row'],
      ['servers', '/servers', 'server-row'],
      ['secrets', '/secrets', 'secret-row'],
    ];
    const problems: string[] = [];
    for (const viewport of [DESKTOP, PHONE]) {
      await page.setViewportSize(viewport);
      for (const [name, url, ready] of pages) {
        await page.goto(`${cp.url}${url}`);
        await byTestId(ready).first().waitFor();
        const found = [...(await axeViolations()), ...(viewport === PHONE ? await overflow() : [])];
        if (found.length) {
          problems.push(`${name} at ${viewport.width} px:\n  ${found.join('\n  ')}`);
          await mkdir(ARTIFACTS, { recursive: true });
          await page.screenshot({ path: path.join(ARTIFACTS, `a11y-${name}-${viewport.width}.png`), fullPage: true });
        }
        if (viewport === PHONE) {
          // How each page looks on a phone, for whoever reviews a layout change.
          await mkdir(ARTIFACTS, { recursive: true });
          await page.screenshot({ path: path.join(ARTIFACTS, `phone-${name}.png`), fullPage: true });
        }
        if (name === 'executions' && viewport === PHONE) {
          // The key columns stay on screen on a phone.
          for (const column of ['Status', 'Script', 'Exit']) {
            const box = await page.locator('[data-testid="execution-list"] th', { hasText: column }).boundingBox();
            if (!box || box.x < 0 || box.x + box.width > PHONE.width) problems.push(`executions at 390 px: column ${column} is not on screen (${JSON.stringify(box)})`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

/** axe-core's critical and serious violations on the current page, one line each. */
async function axeViolations(): Promise<string[]> {
  await page.addScriptTag({ path: AXE });
  return page.evaluate<string[]>(`(async () => {
    const { violations } = await window.axe.run(document, { resultTypes: ['violations'] });
    return violations
      .filter((v) => v.impact === 'critical' || v.impact === 'serious')
      .map((v) => v.impact + ' ' + v.id + ': ' + v.help + ' (' + v.nodes.length + ' nodes, e.g. ' + JSON.stringify(v.nodes.slice(0, 3).map((n) => n.target)) + ')');
  })()`);
}

/** The page scrolls sideways: how far, and the elements that stick out. */
async function overflow(): Promise<string[]> {
  return page.evaluate<string[]>(`(() => {
    const width = window.innerWidth;
    const over = document.documentElement.scrollWidth - width;
    if (over <= 0) return [];
    const culprits = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > width + 1)
      .slice(0, 5)
      .map((e) => e.tagName.toLowerCase() + '.' + [...e.classList].join('.') + ' right=' + Math.round(e.getBoundingClientRect().right));
    return ['overflows sideways by ' + over + ' px: ' + culprits.join(', ')];
  })()`);
}
