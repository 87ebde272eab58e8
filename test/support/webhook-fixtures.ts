import { createHmac } from 'node:crypto';
import { Api } from './http.js';

export const TRIGGER_PATH = '/api/v1/webhooks/script_execute';

export interface TriggerResponse {
  status: number;
  body: any;
  headers: Headers;
}

/** POSTs to the public trigger exactly the bytes and headers given (no API key); `token`: the path form. */
export async function callTrigger(baseUrl: string, body: string | Uint8Array | undefined, headers: Record<string, string> = {}, token?: string): Promise<TriggerResponse> {
  const res = await fetch(`${baseUrl}${TRIGGER_PATH}${token === undefined ? '' : `/${token}`}`, { method: 'POST', headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* keep the text */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** The usual call: `{"token": ...}` as JSON, plus any extra headers. */
export const triggerWith = (baseUrl: string, token: string, headers: Record<string, string> = {}) =>
  callTrigger(baseUrl, JSON.stringify({ token }), { 'content-type': 'application/json', ...headers });

export const hmacHex = (secret: string, body: string | Buffer) => createHmac('sha256', secret).update(body).digest('hex');

/** A server and a script in the workspace of `api`'s key. */
export async function serverAndScript(api: Api, name = 'hook'): Promise<{ serverId: string; scriptId: string }> {
  const server = await api.post('/api/v1/servers', { name: `${name}-server-${Math.random().toString(36).slice(2, 8)}` });
  if (server.status !== 201) throw new Error(`create server: ${server.status} ${JSON.stringify(server.body)}`);
  const script = await api.post('/api/v1/scripts', { name: `${name}-script`, content: 'echo hello' });
  if (script.status !== 201) throw new Error(`create script: ${script.status} ${JSON.stringify(script.body)}`);
  return { serverId: server.body.id, scriptId: script.body.id };
}

export interface CreatedWebhook {
  id: string;
  token: string;
  [k: string]: any;
}

export async function createWebhook(
  api: Api,
  scriptId: string,
  body: { name?: string; serverId: string; allowedIps?: string[]; hmacSecret?: string; signatureScheme?: string },
): Promise<CreatedWebhook> {
  const r = await api.post(`/api/v1/scripts/${scriptId}/webhooks`, { name: 'hook', ...body });
  if (r.status !== 201) throw new Error(`create webhook: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as CreatedWebhook;
}

/** Calls the control plane accepted in groups of more than one so far (its group-commit histogram on /metrics). */
export async function groupedAccepts(baseUrl: string, metricsToken: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 'NaN');
  return value(/^devpilot_trigger_accept_group_size_sum (\S+)$/m) - value(/^devpilot_trigger_accept_group_size_bucket\{le="1"\} (\S+)$/m);
}
