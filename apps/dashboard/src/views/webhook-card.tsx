import { useState } from 'preact/hooks';
import type { ApiError } from '../api/client.js';
import type { Webhook } from '../api/types.js';
import { confirmAction, toast } from '../components/overlays.js';
import { CopyButton, CopyField, ErrorNotice, Loading } from '../components/ui.js';
import { formatDateTime, formatRelative } from '../lib/format.js';
import { Link } from '../lib/router.js';
import { toApiError, useResource, useSession } from '../lib/session.js';

export function WebhookCard(props: { webhook: Webhook; serverName: string; onChange: (w: Webhook) => void; onDeleted: () => void }) {
  const { api, isOwner } = useSession();
  const w = props.webhook;
  const [error, setError] = useState<ApiError | null>(null);
  const [showDeliveries, setShowDeliveries] = useState(false);
  const [busy, setBusy] = useState(false);

  const toggle = async () => {
    setBusy(true);
    setError(null);
    try {
      const next = await api.updateWebhook(w.id, { active: !w.active });
      props.onChange({ ...w, ...next, active: next?.active ?? !w.active });
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    const ok = await confirmAction({
      title: `Delete webhook “${w.name}”?`,
      body: 'Its token stops working at once. Executions it started stay in the history.',
      confirmLabel: 'Delete webhook',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.deleteWebhook(w.id);
      toast(`Webhook “${w.name}” deleted`);
      props.onDeleted();
    } catch (e) {
      setError(toApiError(e));
    }
  };

  return (
    <div class={`card webhook${w.active ? '' : ' inactive'}`} data-testid="webhook-row" data-webhook-id={w.id}>
      <div class="webhook-head">
        <div>
          <h3 data-testid="webhook-name">{w.name}</h3>
          <div class="muted small">
            runs on <strong>{props.serverName}</strong>
            {w.hmacEnabled && <span class="chip chip-secure">HMAC signed</span>}
            {w.allowedIps.length > 0 && <span class="chip">{w.allowedIps.length} allowed IP range{w.allowedIps.length > 1 ? 's' : ''}</span>}
          </div>
        </div>
        <label class={`switch${isOwner ? '' : ' disabled'}`} title={w.active ? 'Active: calls are accepted' : 'Paused: calls get 404'}>
          <input type="checkbox" checked={w.active} disabled={!isOwner || busy} onChange={() => void toggle()} data-testid="webhook-active-toggle" />
          <span class="slider" />
          <span class="switch-label">{w.active ? 'Active' : 'Paused'}</span>
        </label>
      </div>
      <dl class="facts">
        <div>
          <dt>Successful calls</dt>
          <dd data-testid="webhook-call-count">{w.callCount}</dd>
        </div>
        <div>
          <dt>Last valid call</dt>
          <dd title={formatDateTime(w.lastCalledAt)} data-testid="webhook-last-called">
            {formatRelative(w.lastCalledAt)}
          </dd>
        </div>
        <div>
          <dt>Allowed IPs</dt>
          <dd class="mono small">{w.allowedIps.length ? w.allowedIps.join(', ') : 'any'}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd title={formatDateTime(w.createdAt)}>{formatRelative(w.createdAt)}</dd>
        </div>
      </dl>
      <div class="kv-block">
        <span class="field-label">Token</span>
        <CopyField value={w.token} testid="webhook-token" copyTestid="copy-webhook-token" />
      </div>
      <Snippets webhook={w} />
      <ErrorNotice error={error} />
      <div class="row-actions">
        <button type="button" class="btn btn-small" onClick={() => setShowDeliveries((v) => !v)} data-testid="webhook-deliveries-toggle">
          {showDeliveries ? 'Hide deliveries' : 'Recent deliveries'}
        </button>
        <Link class="btn btn-small btn-ghost" href={`/executions?webhookId=${encodeURIComponent(w.id)}`}>
          Executions
        </Link>
        {isOwner && (
          <button type="button" class="btn btn-small btn-danger-ghost push-right" onClick={() => void remove()} data-testid="webhook-delete">
            Delete
          </button>
        )}
      </div>
      {showDeliveries && <Deliveries webhookId={w.id} />}
    </div>
  );
}

const LANG_LABEL: Record<string, string> = { curl: 'curl', node: 'Node.js', python: 'Python', python3: 'Python', shell: 'shell', bash: 'bash' };

/** The API's ready-made snippets (every string field of `examples`/`snippets`); built here when it sends none. */
export function snippetsOf(w: Webhook): [string, string][] {
  const out: [string, string][] = [];
  for (const src of [w.examples, w.snippets]) {
    if (src && typeof src === 'object') for (const [k, v] of Object.entries(src)) if (typeof v === 'string' && v.trim()) out.push([k, v]);
  }
  if (!out.some(([k]) => k === 'curl') && typeof w.curl === 'string') out.unshift(['curl', w.curl]);
  return out.length ? out : fallbackSnippets(w);
}

function fallbackSnippets(w: Webhook): [string, string][] {
  const url = w.url ?? `${window.location.origin}/api/v1/webhooks/script_execute`;
  const body = JSON.stringify({ token: w.token });
  if (!w.hmacEnabled) {
    return [
      ['curl', `curl -sS -X POST '${url}' \\\n  -H 'Content-Type: application/json' \\\n  -d '${body}'`],
      ['node', `const res = await fetch('${url}', {\n  method: 'POST',\n  headers: { 'Content-Type': 'application/json' },\n  body: JSON.stringify({ token: '${w.token}' }),\n});\nconsole.log(res.status, await res.json());`],
      ['python', `import json, urllib.request\n\nreq = urllib.request.Request(\n    '${url}',\n    data=json.dumps({'token': '${w.token}'}).encode(),\n    headers={'Content-Type': 'application/json'},\n    method='POST',\n)\nprint(urllib.request.urlopen(req).read().decode())`],
    ];
  }
  return [
    ['curl', `BODY='${body}'\nSIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -hex | sed 's/^.* //')\ncurl -sS -X POST '${url}' \\\n  -H 'Content-Type: application/json' \\\n  -H "X-Webhook-Signature: $SIG" \\\n  -d "$BODY"`],
    ['node', `import { createHmac } from 'node:crypto';\n\nconst body = JSON.stringify({ token: '${w.token}' });\nconst signature = createHmac('sha256', process.env.WEBHOOK_SECRET).update(body).digest('hex');\nconst res = await fetch('${url}', {\n  method: 'POST',\n  headers: { 'Content-Type': 'application/json', 'X-Webhook-Signature': signature },\n  body,\n});\nconsole.log(res.status, await res.json());`],
    ['python', `import hashlib, hmac, json, os, urllib.request\n\nbody = json.dumps({'token': '${w.token}'}).encode()\nsig = hmac.new(os.environ['WEBHOOK_SECRET'].encode(), body, hashlib.sha256).hexdigest()\nreq = urllib.request.Request(\n    '${url}', data=body, method='POST',\n    headers={'Content-Type': 'application/json', 'X-Webhook-Signature': sig},\n)\nprint(urllib.request.urlopen(req).read().decode())`],
  ];
}

function Snippets({ webhook }: { webhook: Webhook }) {
  const snippets = snippetsOf(webhook);
  const [tab, setTab] = useState(0);
  const current = snippets[Math.min(tab, snippets.length - 1)];
  if (!current) return null;
  return (
    <div class="snippets" data-testid="webhook-snippets">
      <div class="snippet-tabs">
        {snippets.map(([k], i) => (
          <button key={k} type="button" class={i === tab ? 'active' : ''} onClick={() => setTab(i)} data-testid={`snippet-tab-${k}`}>
            {LANG_LABEL[k] ?? k}
          </button>
        ))}
        <span class="grow" />
        <CopyButton text={current[1]} testid="copy-snippet" />
      </div>
      <pre class="snippet" data-testid="webhook-snippet">{current[1]}</pre>
      {webhook.hmacEnabled && <p class="muted small">Set <code>WEBHOOK_SECRET</code> to the HMAC secret given when the webhook was created.</p>}
    </div>
  );
}

function Deliveries({ webhookId }: { webhookId: string }) {
  const { api } = useSession();
  const deliveries = useResource(() => api.listDeliveries(webhookId), [api, webhookId]);
  if (deliveries.loading && !deliveries.data) return <Loading />;
  const items = deliveries.data?.items ?? [];
  return (
    <div class="deliveries" data-testid="webhook-deliveries">
      <div class="section-head small-head">
        <h4>Recent deliveries</h4>
        <button type="button" class="btn btn-small btn-ghost" onClick={deliveries.reload}>
          Refresh
        </button>
      </div>
      <ErrorNotice error={deliveries.error} title="Could not load deliveries" />
      {items.length === 0 && !deliveries.error ? (
        <p class="muted small pad">No calls yet. Send one with a snippet above.</p>
      ) : (
        <table class="table compact">
          <thead>
            <tr>
              <th>When</th>
              <th>From</th>
              <th>Result</th>
              <th>Reason</th>
              <th>Execution</th>
            </tr>
          </thead>
          <tbody>
            {items.map((d, i) => {
              const ok = d.statusCode !== undefined && d.statusCode < 300;
              return (
                <tr key={d.id ?? i} data-testid="delivery-row">
                  <td title={formatDateTime(d.createdAt)}>{formatRelative(d.createdAt)}</td>
                  <td class="mono small">{d.sourceIp ?? '—'}</td>
                  <td>
                    <span class={`http ${ok ? 'http-ok' : 'http-bad'}`}>{d.statusCode ?? '—'}</span> {d.code && <code class="small">{d.code}</code>}
                  </td>
                  <td class="small">{d.reason ?? (ok ? 'accepted' : '—')}</td>
                  <td>{d.executionId ? <Link href={`/executions/${d.executionId}`}>{d.executionId.slice(0, 8)}</Link> : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}
