import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { sign as githubSign } from '@octokit/webhooks-methods';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from './support/browser.js';
import { type ControlPlane, ROOT, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { serverAndScript, TRIGGER_PATH } from './support/webhook-fixtures.js';

/**
 * Setting a sender up in the dashboard, in Debian's headless Chromium: create a GitHub webhook,
 * copy its generated secret before it is hidden for good (and prove it is the real one by signing
 * a delivery with GitHub's own code), then edit the webhook's name, allowed IPs, policy and
 * payload passing; and create one that passes the request from the start.
 */

let db: TestDatabase;
let cp: ControlPlane;
let api: Api;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let scriptId: string;

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, 'dist/dashboard/index.html'))) throw new Error('the dashboard is not built: npm run build');
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  api = new Api(cp.url, cp.adminKey);
  ({ scriptId } = await serverAndScript(api, 'ui'));
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cp.url });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
});

afterAll(async () => {
  await browser?.close();
  await cp?.stop();
  await db?.drop();
});

const byTestId = (id: string) => page.getByTestId(id);

describe('webhooks in the dashboard', () => {
  it('creates a GitHub webhook, copies its generated secret before it is hidden, and edits name, IPs, policy and payload passing', async () => {
    await page.goto(cp.url);
    await byTestId('signin-api-key').fill(cp.adminKey);
    await byTestId('signin-submit').click();
    // Signed in before leaving the page: a navigation that wins the race lands on the sign-in form.
    await byTestId('nav-scripts').waitFor();
    await page.goto(`${cp.url}/scripts/${scriptId}/webhooks`);
    await byTestId('webhook-create-form').waitFor();

    const form = byTestId('webhook-create-form');
    await form.getByTestId('webhook-name-input').fill('from-github');
    await form.getByTestId('webhook-scheme-select').selectOption('github');
    expect(await form.getByTestId('webhook-pass-payload').isChecked()).toBe(false);
    await form.getByTestId('webhook-create-submit').click();

    const card = byTestId('webhook-row').filter({ hasText: 'from-github' });
    const shown = card.getByTestId('webhook-new-secret');
    await shown.waitFor();
    await card.getByTestId('copy-webhook-secret').click();
    await card.getByTestId('copy-webhook-secret').filter({ hasText: 'Copied' }).waitFor();
    const copied = String(await page.evaluate('navigator.clipboard.readText()'));
    expect(copied).toMatch(/^[0-9a-f]{64}$/);
    await card.getByTestId('webhook-secret-hide').click();
    await shown.waitFor({ state: 'detached' });

    // The copied secret is the webhook's: a delivery signed with it by GitHub's code is accepted.
    const token = ((await card.getByTestId('webhook-token').textContent()) ?? '').trim();
    const body = JSON.stringify({ ref: 'refs/heads/main' });
    const res = await fetch(`${cp.url}${TRIGGER_PATH}/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': await githubSign(copied, body) },
      body,
    });
    expect(res.status).toBe(202);
    // The sender setup names the path-token URL to paste into GitHub.
    await card.getByTestId('webhook-sender-setup').locator('summary').click();
    await expect(card.getByTestId('webhook-sender-setup').innerText()).resolves.toContain(`${TRIGGER_PATH}/${token}`);

    // Gone for good: not after a reload either.
    await page.reload();
    await byTestId('webhook-row').filter({ hasText: 'from-github' }).waitFor();
    expect(await byTestId('webhook-new-secret').count()).toBe(0);
    expect(await page.locator('body').innerText()).not.toContain(copied);

    // Edit name, allowed IPs, policy and payload passing.
    const again = byTestId('webhook-row').filter({ hasText: 'from-github' });
    await again.getByTestId('webhook-edit').click();
    const edit = again.getByTestId('webhook-edit-form');
    await edit.getByTestId('webhook-edit-name').fill('deploy-from-github');
    await edit.getByTestId('webhook-edit-ips').fill('192.0.2.0/24\n2001:db8::/32');
    await edit.getByTestId('webhook-concurrency-select').selectOption('queue');
    // Each policy explains itself in one line under the select.
    await edit.getByText('one run at a time, in the order calls arrived').waitFor();
    await edit.getByTestId('webhook-cooldown-input').fill('30');
    expect(await edit.getByTestId('webhook-pass-payload').isChecked()).toBe(false);
    await edit.getByTestId('webhook-pass-payload').check();
    await edit.getByTestId('webhook-edit-save').click();
    const edited = byTestId('webhook-row').filter({ hasText: 'deploy-from-github' });
    await edited.getByTestId('webhook-policy-chip').getByText('one run at a time, in order').waitFor();
    await edited.getByTestId('webhook-payload-chip').waitFor();

    const hooks = (await api.get(`/api/v1/scripts/${scriptId}/webhooks`)).body.items as Record<string, unknown>[];
    expect(hooks).toHaveLength(1);
    expect(hooks[0]).toMatchObject({
      name: 'deploy-from-github',
      allowedIps: ['192.0.2.0/24', '2001:db8::/32'],
      concurrency: 'queue',
      cooldownSeconds: 30,
      passPayload: true,
      signatureScheme: 'github',
    });
  });

  it('creates a webhook that passes the request to its script from the start', async () => {
    await page.goto(`${cp.url}/scripts/${scriptId}/webhooks`);
    await byTestId('webhook-row').first().waitFor();
    if (!(await byTestId('webhook-create-form').count())) await byTestId('webhook-new').click();
    const form = byTestId('webhook-create-form');
    await form.getByTestId('webhook-name-input').fill('with-request');
    await form.getByTestId('webhook-pass-payload').check();
    await form.getByTestId('webhook-create-submit').click();
    await byTestId('webhook-row').filter({ hasText: 'with-request' }).getByTestId('webhook-payload-chip').waitFor();
    const hooks = (await api.get(`/api/v1/scripts/${scriptId}/webhooks`)).body.items as { name: string; passPayload: boolean }[];
    expect(hooks.find((h) => h.name === 'with-request')?.passPayload).toBe(true);
  });
});
