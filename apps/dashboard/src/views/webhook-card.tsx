import { useState } from 'preact/hooks';
import type { ApiError } from '../api/client.js';
import type { Webhook } from '../api/types.js';
import { confirmAction, toast } from '../components/overlays.js';
import { CopyButton, CopyField, ErrorNotice, Field, Loading } from '../components/ui.js';
import { formatDateTime, formatRelative } from '../lib/format.js';
import { Link } from '../lib/router.js';
import { toApiError, useResource, useSession } from '../lib/session.js';
import { useRunSettings } from './webhooks.js';

export function WebhookCard(props: { webhook: Webhook; serverName: string; onChange: (w: Webhook) => void; onDeleted: () => void }) {
  const { api, isOwner } = useSession();
  const w = props.webhook;
  const [error, setError] = useState<ApiError | null>(null);
  const [showDeliveries, setShowDeliveries] = useState(false);
  const [busy, setBusy] = useState(false);
  const [editing, setEditing] = useState(false);

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
            {w.hmacEnabled && <span class="chip chip-secure">{w.signatureScheme === 'devpilot' ? 'HMAC signed' : `${SCHEME_LABEL[w.signatureScheme]} signed`}</span>}
            {w.concurrency !== 'parallel' && <span class="chip" data-testid="webhook-policy-chip">{POLICY_CHIPS[w.concurrency]}</span>}
            {w.cooldownSeconds > 0 && <span class="chip">cooldown {w.cooldownSeconds} s</span>}
            {w.passPayload && <span class="chip" data-testid="webhook-payload-chip" title="Its runs get DEVPILOT_PAYLOAD_FILE, DEVPILOT_EVENT, DEVPILOT_DELIVERY_ID and DEVPILOT_CONTENT_TYPE">passes the request</span>}
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
      {w.hmacSecret && (
        <div class="notice notice-warn" data-testid="webhook-new-secret">
          <strong>Copy the secret now: it is shown this once.</strong>
          <CopyField value={w.hmacSecret} testid="webhook-secret" copyTestid="copy-webhook-secret" />
          <button type="button" class="btn btn-small" onClick={() => props.onChange({ ...w, hmacSecret: undefined })} data-testid="webhook-secret-hide">
            I have copied it: hide it for good
          </button>
        </div>
      )}
      {w.token !== null && (
        <div class="kv-block">
          <span class="field-label">Token</span>
          <CopyField value={w.token} testid="webhook-token" copyTestid="copy-webhook-token" />
        </div>
      )}
      {editing && <EditWebhook webhook={w} onSaved={(next) => { props.onChange(next); setEditing(false); }} onCancel={() => setEditing(false)} />}
      {w.token !== null && <SenderSetup webhook={w} />}
      <Snippets webhook={w} />
      <ErrorNotice error={error} />
      <div class="row-actions">
        <button type="button" class="btn btn-small" onClick={() => setShowDeliveries((v) => !v)} data-testid="webhook-deliveries-toggle">
          {showDeliveries ? 'Hide deliveries' : 'Recent deliveries'}
        </button>
        <Link class="btn btn-small btn-ghost" href={`/executions?webhookId=${encodeURIComponent(w.id)}`}>
          Executions
        </Link>
        {isOwner && !editing && (
          <button type="button" class="btn btn-small btn-ghost" onClick={() => setEditing(true)} data-testid="webhook-edit">
            Edit
          </button>
        )}
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
      {webhook.hmacEnabled && <p class="muted small">Set <code>WEBHOOK_SECRET</code> to the secret given when the webhook was created.</p>}
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

const POLICY_CHIPS: Record<Webhook['concurrency'], string> = {
  parallel: 'runs in parallel',
  queue: 'one run at a time, in order',
  skip: 'skips while running',
  replace: 'replaces the running one',
};

const SCHEME_LABEL: Record<Webhook['signatureScheme'], string> = {
  devpilot: 'HMAC',
  github: 'GitHub',
  gitlab: 'GitLab',
  'standard-webhooks': 'Standard Webhooks',
  slack: 'Slack',
};

/** Name, allowed IPs, policy, cooldown and payload passing; the token, secret and scheme never change. */
function EditWebhook(props: { webhook: Webhook; onSaved: (w: Webhook) => void; onCancel: () => void }) {
  const { api } = useSession();
  const w = props.webhook;
  const settings = useRunSettings(w);
  const { bad } = settings;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  return (
    <form
      class="card form inset"
      data-testid="webhook-edit-form"
      onSubmit={(e) => void (async () => {
        e.preventDefault();
        if (bad.length) return;
        setBusy(true);
        setError(null);
        try {
          const next = await api.updateWebhook(w.id, settings.values);
          props.onSaved({ ...w, ...next });
          toast(`Webhook “${next.name}” saved`);
        } catch (err) {
          setError(toApiError(err));
        } finally {
          setBusy(false);
        }
      })()}
    >
      <Field label="Name">
        <input value={settings.name} onInput={(e) => settings.setName(e.currentTarget.value)} required data-testid="webhook-edit-name" />
      </Field>
      <Field label="Allowed IPs" hint={bad.length ? <span class="bad">Not an IP or CIDR: {bad.join(', ')}</span> : 'One IP or CIDR per line. Empty: any address may call.'}>
        <textarea rows={3} class="mono" value={settings.ipsText} onInput={(e) => settings.setIpsText(e.currentTarget.value)} data-testid="webhook-edit-ips" />
      </Field>
      {settings.fields}
      <ErrorNotice error={error} title="Could not save the webhook" />
      <div class="form-actions">
        <button type="button" class="btn btn-ghost" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" class="btn btn-primary" disabled={busy || !settings.valid} data-testid="webhook-edit-save">
          {busy ? 'Saving…' : 'Save'}
        </button>
      </div>
    </form>
  );
}

/** Per sender, exactly what to paste where (the setting names are the senders' own). */
function SenderSetup({ webhook }: { webhook: Webhook }) {
  const base = `${location.origin}/api/v1/webhooks/script_execute`;
  const pathUrl = `${base}/${webhook.token ?? ''}`;
  const secret = webhook.hmacEnabled ? 'the secret shown when the webhook was created' : null;
  const rows: [string, [string, string][]][] = [];
  if (webhook.signatureScheme === 'github') {
    rows.push(['GitHub: Settings → Webhooks → Add webhook', [['Payload URL', pathUrl], ['Content type', 'application/json (application/x-www-form-urlencoded also works)'], ['Secret', secret ?? '']]]);
  } else if (webhook.signatureScheme === 'gitlab') {
    rows.push(['GitLab: Settings → Webhooks', [['URL', pathUrl], ['Secret token', secret ?? '']]]);
  } else if (webhook.signatureScheme === 'slack') {
    rows.push(['Slack: Slash Commands or Event Subscriptions', [['Request URL', pathUrl]]]);
  } else if (webhook.signatureScheme === 'standard-webhooks') {
    rows.push(['Standard Webhooks sender (Svix and others)', [['Endpoint URL', pathUrl], ['Signing secret', 'the whsec_ secret shown when the webhook was created']]]);
  } else {
    rows.push(['Alertmanager: webhook_configs', [['url', base], ['http_config.authorization.credentials', webhook.token ?? '']]]);
    rows.push(['Grafana: Contact points → Webhook', [['URL', base], ['Authorization header', `Bearer ${webhook.token ?? ''}`]]]);
    rows.push(['Any sender that only takes a URL', [['URL', pathUrl]]]);
  }
  return (
    <details class="sender-setup" data-testid="webhook-sender-setup">
      <summary>Set up the sender</summary>
      {rows.map(([sender, fields]) => (
        <div key={sender} class="kv-block">
          <span class="field-label">{sender}</span>
          <dl class="facts">
            {fields.map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd class="mono small">{v.startsWith('http') || v === webhook.token || v.startsWith('Bearer ') ? <CopyField value={v} /> : v}</dd>
              </div>
            ))}
          </dl>
        </div>
      ))}
      <p class="muted small">A sender's manual “redeliver” of a delivery that was accepted is answered as a duplicate and runs nothing.</p>
    </details>
  );
}
