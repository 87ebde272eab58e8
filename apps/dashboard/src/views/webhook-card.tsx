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
      {w.token !== null && (
        <div class="kv-block">
          <span class="field-label">Token</span>
          <CopyField value={w.token} testid="webhook-token" copyTestid="copy-webhook-token" />
        </div>
      )}
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

/** The API's ready-made snippets, one tab per language it sends. */
export function snippetsOf(w: Webhook): [string, string][] {
  return Object.entries(w.examples).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== '');
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
      <pre class="snippet" tabIndex={0} aria-label={`${LANG_LABEL[current[0]] ?? current[0]} snippet`} data-testid="webhook-snippet">{current[1]}</pre>
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
