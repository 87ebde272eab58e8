import { useEffect, useState } from 'preact/hooks';
import type { ApiError } from '../api/client.js';
import type { Script, Webhook } from '../api/types.js';
import { ErrorNotice, Field, Loading } from '../components/ui.js';
import { toApiError, useFeedEvent, useResource, useSession } from '../lib/session.js';
import { WebhookCard } from './webhook-card.js';

export function WebhooksTab({ script }: { script: Script }) {
  const { api, isOwner } = useSession();
  const hooks = useResource(() => api.listWebhooks(script.id), [api, script.id]);
  const servers = useResource(() => api.listServers(), [api]);
  const [creating, setCreating] = useState(false);
  const items = hooks.data?.items ?? [];
  const serverName = (id: string) => servers.data?.items.find((s) => s.id === id)?.name ?? id.slice(0, 8);
  const replace = (w: Webhook) => hooks.setData((p) => p && { ...p, items: p.items.map((x) => (x.id === w.id ? { ...x, ...w } : x)) });
  // An accepted call bumps its webhook's counter in the statement that creates the execution: re-read the card.
  useFeedEvent('execution.created', (e) => {
    if (!e.webhookId || !items.some((w) => w.id === e.webhookId)) return;
    api.getWebhook(e.webhookId).then(replace, () => undefined);
  });

  if (hooks.loading && !hooks.data) return <Loading />;
  const showForm = isOwner && (creating || items.length === 0);
  return (
    <div class="webhooks">
      <ErrorNotice error={hooks.error} title="Could not load webhooks" />
      {items.length === 0 && !hooks.error && (
        <div class="empty explain" data-testid="webhooks-empty">
          <h3>No webhooks for this script yet</h3>
          <p>
            A webhook turns this script into an HTTPS endpoint: anything that can send an HTTP request (a CI pipeline, a
            monitoring alert, a chat bot) POSTs the webhook's secret token to{' '}
            <code>/api/v1/webhooks/script_execute</code>, and the script runs on the server you pick here. You can limit
            callers to a list of IP addresses and require an HMAC signature of the body.
          </p>
          {!isOwner && <p>Ask an owner of this workspace to create one.</p>}
        </div>
      )}
      {showForm && (
        <CreateWebhook
          scriptId={script.id}
          servers={servers.data?.items ?? []}
          onCancel={items.length ? () => setCreating(false) : undefined}
          onCreated={(w) => {
            hooks.setData((p) => ({ items: [w, ...(p?.items ?? [])], nextCursor: p?.nextCursor ?? null }));
            setCreating(false);
          }}
        />
      )}
      {items.length > 0 && (
        <div class="section-head">
          <h2>Webhooks</h2>
          {isOwner && !creating && (
            <button type="button" class="btn btn-primary" onClick={() => setCreating(true)} data-testid="webhook-new">
              New webhook
            </button>
          )}
        </div>
      )}
      <div class="webhook-list" data-testid="webhook-list">
        {items.map((w) => (
          <WebhookCard
            key={w.id}
            webhook={w}
            serverName={serverName(w.serverId)}
            onChange={replace}
            onDeleted={() => hooks.setData((p) => p && { ...p, items: p.items.filter((x) => x.id !== w.id) })}
          />
        ))}
      </div>
    </div>
  );
}

/** One entry per line or comma; every entry an IPv4/IPv6 address, optionally with a /prefix. */
export function parseAllowedIps(text: string): { ips: string[]; bad: string[] } {
  const ips = text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const v4 = /^(\d{1,3})(\.\d{1,3}){3}(\/\d{1,2})?$/;
  const v6 = /^[0-9a-f:.]*:[0-9a-f:.]*(\/\d{1,3})?$/i;
  return { ips, bad: ips.filter((ip) => !v4.test(ip) && !v6.test(ip)) };
}

function randomSecret(): string {
  const b = new Uint8Array(32);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function CreateWebhook(props: {
  scriptId: string;
  servers: { id: string; name: string; status: string }[];
  onCreated: (w: Webhook) => void;
  onCancel?: () => void;
}) {
  const { api } = useSession();
  const settings = useRunSettings({ name: '', allowedIps: [], concurrency: 'parallel', cooldownSeconds: 0, passPayload: false });
  const { bad } = settings;
  const [serverId, setServerId] = useState('');
  const [secret, setSecret] = useState('');
  const [scheme, setScheme] = useState<Webhook['signatureScheme']>('devpilot');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    // A default only while nothing is chosen: an effect of an earlier render must not undo a choice made since.
    if (!serverId && props.servers.length) setServerId((chosen) => chosen || (props.servers.find((s) => s.status === 'online') ?? props.servers[0]!).id);
  }, [props.servers, serverId]);

  return (
    <form
      class="card form"
      data-testid="webhook-create-form"
      onSubmit={(e) => void (async () => {
        e.preventDefault();
        if (bad.length) return;
        setBusy(true);
        setError(null);
        try {
          const { allowedIps, ...rest } = settings.values;
          const w = await api.createWebhook(props.scriptId, {
            ...rest,
            serverId,
            ...(allowedIps.length ? { allowedIps } : {}),
            ...(secret ? { hmacSecret: secret } : {}),
            signatureScheme: scheme,
          });
          props.onCreated(w);
        } catch (err) {
          setError(toApiError(err));
        } finally {
          setBusy(false);
        }
      })()}
    >
      <h2>New webhook</h2>
      <div class="grid-2">
        <Field label="Name">
          <input value={settings.name} onInput={(e) => settings.setName(e.currentTarget.value)} required placeholder="e.g. deploy from CI" data-testid="webhook-name-input" />
        </Field>
        <Field label="Runs on server">
          <select value={serverId} onChange={(e) => setServerId(e.currentTarget.value)} required data-testid="webhook-server-select">
            {props.servers.length === 0 && <option value="">No servers: create one first</option>}
            {props.servers.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name} ({s.status})
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Field
        label="Allowed IPs (optional)"
        hint={bad.length ? <span class="bad">Not an IP or CIDR: {bad.join(', ')}</span> : 'One IP or CIDR per line, IPv4 or IPv6. Empty: any address may call.'}
      >
        <textarea rows={3} class="mono" value={settings.ipsText} onInput={(e) => settings.setIpsText(e.currentTarget.value)} placeholder={'203.0.113.7\n10.0.0.0/8\n2001:db8::/32'} data-testid="webhook-ips-input" />
      </Field>
      <Field label="Who calls it (signature scheme)" hint={SCHEME_HINT[scheme]}>
        <select value={scheme} onChange={(e) => setScheme(e.currentTarget.value as Webhook['signatureScheme'])} data-testid="webhook-scheme-select">
          {SCHEMES.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
      </Field>
      <Field label={scheme === 'slack' ? 'Slack signing secret' : scheme === 'devpilot' ? 'HMAC secret (optional)' : 'Secret (optional: generated when empty)'} hint={SECRET_HINT[scheme]}>
        <div class="input-with-button">
          <input
            class="mono"
            value={secret}
            onInput={(e) => setSecret(e.currentTarget.value)}
            required={scheme === 'slack'}
            autoComplete="off"
            spellcheck={false}
            data-testid="webhook-secret-input"
          />
          {scheme === 'devpilot' && (
            <button type="button" class="btn btn-small" onClick={() => setSecret(randomSecret())}>
              Generate
            </button>
          )}
        </div>
      </Field>
      {settings.fields}
      <ErrorNotice error={error} title="Could not create the webhook" />
      <div class="form-actions">
        {props.onCancel && (
          <button type="button" class="btn btn-ghost" onClick={props.onCancel}>
            Cancel
          </button>
        )}
        <button
          type="submit"
          class="btn btn-primary"
          disabled={busy || !settings.valid || !serverId || (scheme === 'slack' && !secret)}
          data-testid="webhook-create-submit"
        >
          {busy ? 'Creating…' : 'Create webhook'}
        </button>
      </div>
    </form>
  );
}

const SCHEMES: [Webhook['signatureScheme'], string][] = [
  ['devpilot', 'Any caller (token, optional X-Webhook-Signature)'],
  ['github', 'GitHub (X-Hub-Signature-256)'],
  ['gitlab', 'GitLab (X-Gitlab-Token)'],
  ['standard-webhooks', 'Standard Webhooks sender (webhook-signature)'],
  ['slack', 'Slack (X-Slack-Signature)'],
];

const SCHEME_HINT: Record<Webhook['signatureScheme'], string> = {
  devpilot: 'Callers send the token (in the body, the URL, X-Webhook-Token or Authorization: Bearer) and, with a secret, X-Webhook-Signature. Also for Alertmanager and Grafana.',
  github: 'GitHub signs each delivery with the secret; a redelivery of an accepted delivery is answered as a duplicate.',
  gitlab: 'GitLab sends the secret as X-Gitlab-Token.',
  'standard-webhooks': 'For Svix and any Standard Webhooks sender: a whsec_ secret, signed id and timestamp.',
  slack: "For slash commands and events: paste the Slack app's Signing Secret below.",
};

const SECRET_HINT: Record<Webhook['signatureScheme'], string> = {
  devpilot: 'When set, callers must send X-Webhook-Signature: the hex HMAC-SHA256 of the raw body. It cannot be shown again or changed later.',
  github: 'Leave empty to have one generated: it is shown once, right after creating. It cannot be changed later.',
  gitlab: 'Leave empty to have one generated: it is shown once, right after creating. It cannot be changed later.',
  'standard-webhooks': 'A whsec_ secret; leave empty to have one generated (shown once). It cannot be changed later.',
  slack: 'Basic Information → App Credentials → Signing Secret. It cannot be changed later.',
};

/**
 * What a webhook's owner sets at creation and may change later (name, allowed IPs, policy,
 * cooldown, passing the request), as form state for the create and edit forms: `values` to send,
 * `fields` the policy and payload inputs both forms show alike.
 */
export function useRunSettings(initial: Pick<Webhook, 'name' | 'allowedIps' | 'concurrency' | 'cooldownSeconds' | 'passPayload'>) {
  const [name, setName] = useState(initial.name);
  const [ipsText, setIpsText] = useState(initial.allowedIps.join('\n'));
  const [concurrency, setConcurrency] = useState(initial.concurrency);
  const [cooldown, setCooldown] = useState(String(initial.cooldownSeconds));
  const [passPayload, setPassPayload] = useState(initial.passPayload);
  const { ips, bad } = parseAllowedIps(ipsText);
  return {
    name,
    setName,
    ipsText,
    setIpsText,
    ips,
    bad,
    /** A name and only valid addresses. */
    valid: name.trim() !== '' && bad.length === 0,
    values: { name: name.trim(), allowedIps: ips, concurrency, cooldownSeconds: Number(cooldown) || 0, passPayload },
    fields: (
      <>
        <PolicyFields concurrency={concurrency} cooldown={cooldown} onConcurrency={setConcurrency} onCooldown={setCooldown} />
        <PayloadField checked={passPayload} onChange={setPassPayload} />
      </>
    ),
  };
}

/** Whether the script gets the request: in the create form and when editing a webhook. */
function PayloadField(props: { checked: boolean; onChange: (v: boolean) => void }) {
  return (
    <div class="field">
      <label class="check-line">
        <input type="checkbox" checked={props.checked} onChange={(e) => props.onChange(e.currentTarget.checked)} data-testid="webhook-pass-payload" />
        Pass the request to the script
      </label>
      <span class="field-hint">
        Its runs get <code>DEVPILOT_PAYLOAD_FILE</code> (the raw body, removed after the run), <code>DEVPILOT_EVENT</code>, <code>DEVPILOT_DELIVERY_ID</code> and <code>DEVPILOT_CONTENT_TYPE</code>.
      </span>
    </div>
  );
}

const POLICY_HINTS: Record<Webhook['concurrency'], string> = {
  parallel: 'Every accepted call runs at once, beside any run already going.',
  queue: 'Every call is accepted (202) and waits for the runs before it: one run at a time, in the order calls arrived.',
  skip: 'Skipped calls answer 200 (senders retry any other answer).',
  replace: 'The queued or running one is cancelled; the new call runs.',
};

/** Concurrency policy and cooldown: in the create form and when editing a webhook. */
function PolicyFields(props: {
  concurrency: Webhook['concurrency'];
  cooldown: string;
  onConcurrency: (v: Webhook['concurrency']) => void;
  onCooldown: (v: string) => void;
}) {
  return (
    <div class="grid-2">
      <Field label="When a run is already queued or running" hint={POLICY_HINTS[props.concurrency]}>
        <select value={props.concurrency} onChange={(e) => props.onConcurrency(e.currentTarget.value as Webhook['concurrency'])} data-testid="webhook-concurrency-select">
          <option value="parallel">Run in parallel</option>
          <option value="queue">Queue it: one run at a time, in order</option>
          <option value="skip">Skip the new call</option>
          <option value="replace">Cancel it and run the new one</option>
        </select>
      </Field>
      <Field label="Cooldown (seconds)" hint="Calls within this time of the last accepted one are skipped. 0: none.">
        <input type="number" min={0} max={86400} step={1} value={props.cooldown} onInput={(e) => props.onCooldown(e.currentTarget.value)} data-testid="webhook-cooldown-input" />
      </Field>
    </div>
  );
}
