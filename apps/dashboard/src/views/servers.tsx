import { useState } from 'preact/hooks';
import type { Server, ServerWithToken } from '../api/types.js';
import { confirmAction, toast } from '../components/overlays.js';
import {
  CopyField,
  EmptyState,
  ErrorNotice,
  Field,
  Loading,
  PageHeader,
  ServerStatusDot,
} from '../components/ui.js';
import { formatDateTime, formatRelative } from '../lib/format.js';
import { toApiError, useFeedEvent, useResource, useSession } from '../lib/session.js';
import type { ApiError } from '../api/client.js';

export function ServersView() {
  const { api, isOwner } = useSession();
  const servers = useResource(() => api.listServers(), [api]);
  const [revealed, setRevealed] = useState<{ server: ServerWithToken; rotated: boolean } | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);

  useFeedEvent('server.status', (e) => {
    servers.setData((page) =>
      page && {
        ...page,
        items: page.items.map((s) =>
          s.id === e.serverId
            ? { ...s, status: e.status, lastSeenAt: e.status === 'offline' ? new Date().toISOString() : s.lastSeenAt }
            : s,
        ),
      },
    );
    // Hostname, platform and agent version arrive with the agent's handshake: refresh the row.
    if (e.status === 'online') servers.reload();
  });

  const run = async (fn: () => Promise<void>) => {
    setActionError(null);
    try {
      await fn();
    } catch (e) {
      setActionError(toApiError(e));
    }
  };

  const items = servers.data?.items ?? [];
  return (
    <div class="page">
      <PageHeader
        title="Servers"
        sub="Machines running the Devpilot agent. The agent connects out to this control plane; nothing connects in."
      />
      {isOwner && (
        <CreateServer
          onCreated={(server) => {
            setRevealed({ server, rotated: false });
            servers.reload();
          }}
        />
      )}
      {revealed && <TokenReveal {...revealed} onClose={() => setRevealed(null)} />}
      <ErrorNotice error={servers.error} title="Could not load servers" />
      <ErrorNotice error={actionError} />
      {servers.loading && !servers.data ? (
        <Loading />
      ) : items.length === 0 && !servers.error ? (
        <EmptyState title="No servers yet" testid="servers-empty">
          <p>
            {isOwner ? 'Create a server above and run its install command on the machine' : 'Ask an owner to add a server'},
            or start the control plane with the local agent (<code>npm start</code> registers this machine as{' '}
            <code>local</code>).
          </p>
        </EmptyState>
      ) : (
        <div class="server-list" data-testid="server-list">
          {items.map((s) => (
            <ServerRow
              key={s.id}
              server={s}
              isOwner={isOwner}
              onRename={(name) =>
                run(async () => {
                  const updated = await api.renameServer(s.id, name);
                  servers.setData((p) => p && { ...p, items: p.items.map((x) => (x.id === s.id ? { ...x, ...updated } : x)) });
                })
              }
              onRotate={() =>
                run(async () => {
                  const ok = await confirmAction({
                    title: `Rotate the agent token of “${s.name}”?`,
                    body: 'The current token stops working at once and the connected agent is dropped. Install the new token on the server to bring it back.',
                    confirmLabel: 'Rotate token',
                    danger: true,
                  });
                  if (!ok) return;
                  const rotated = await api.rotateAgentToken(s.id);
                  setRevealed({ server: { ...s, ...rotated }, rotated: true });
                  servers.reload();
                })
              }
              onDelete={() =>
                run(async () => {
                  const ok = await confirmAction({
                    title: `Delete server “${s.name}”?`,
                    body: 'Its agent is disconnected and its token stops working. Webhooks that target it stop working too.',
                    confirmLabel: 'Delete server',
                    danger: true,
                  });
                  if (!ok) return;
                  await api.deleteServer(s.id);
                  toast(`Server “${s.name}” deleted`);
                  servers.setData((p) => p && { ...p, items: p.items.filter((x) => x.id !== s.id) });
                })
              }
            />
          ))}
        </div>
      )}
    </div>
  );
}

function CreateServer({ onCreated }: { onCreated: (s: ServerWithToken) => void }) {
  const { api } = useSession();
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  return (
    <form
      class="card inline-form"
      data-testid="server-create-form"
      onSubmit={(e) => void (async () => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          onCreated(await api.createServer(name.trim()));
          setName('');
        } catch (err) {
          setError(toApiError(err));
        } finally {
          setBusy(false);
        }
      })()}
    >
      <Field label="New server">
        <input
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
          placeholder="e.g. web-1"
          required
          data-testid="server-name-input"
        />
      </Field>
      <button class="btn btn-primary" type="submit" disabled={busy || !name.trim()} data-testid="server-create-submit">
        {busy ? 'Creating…' : 'Create server'}
      </button>
      <ErrorNotice error={error} title="Could not create the server" />
    </form>
  );
}

function TokenReveal({ server, rotated, onClose }: { server: ServerWithToken; rotated: boolean; onClose: () => void }) {
  return (
    <div class="card reveal" data-testid="server-token-reveal">
      <div class="reveal-head">
        <h3>{rotated ? `New agent token for “${server.name}”` : `Server “${server.name}” created`}</h3>
        <button type="button" class="btn btn-small btn-ghost" onClick={onClose} data-testid="server-token-dismiss">
          Done
        </button>
      </div>
      <p class="warn-text">This token is shown once. Copy it now; only its hash is stored.</p>
      <div class="kv-block">
        <span class="field-label">Agent token</span>
        <CopyField value={server.agentToken} testid="server-agent-token" copyTestid="copy-agent-token" />
      </div>
      <div class="kv-block">
        <span class="field-label">Install on the server (one line)</span>
        <CopyField value={server.installCommand} testid="server-install-command" copyTestid="copy-install-command" />
      </div>
    </div>
  );
}

function ServerRow(props: {
  server: Server;
  isOwner: boolean;
  onRename: (name: string) => Promise<void>;
  onRotate: () => Promise<void>;
  onDelete: () => Promise<void>;
}) {
  const { server: s, isOwner } = props;
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(s.name);
  const install =
    s.installCommand ?? `devpilot-agent --url ${window.location.origin} --token <agent token of ${s.name}>`;
  return (
    <div class={`card server-row server-row-${s.status}`} data-testid="server-row" data-server-id={s.id}>
      <div class="server-main">
        {editing ? (
          <form
            class="rename"
            onSubmit={(e) => void (async () => {
              e.preventDefault();
              await props.onRename(name.trim());
              setEditing(false);
            })()}
          >
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} autoFocus data-testid="server-rename-input" />
            <button class="btn btn-small btn-primary" type="submit" disabled={!name.trim()} data-testid="server-rename-submit">
              Save
            </button>
            <button class="btn btn-small btn-ghost" type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </form>
        ) : (
          <h3 class="server-name" data-testid="server-name">
            {s.name}
          </h3>
        )}
        <ServerStatusDot status={s.status} />
      </div>
      <dl class="facts">
        <div>
          <dt>Last seen</dt>
          <dd title={formatDateTime(s.lastSeenAt)}>{s.status === 'online' ? 'now' : formatRelative(s.lastSeenAt)}</dd>
        </div>
        <div>
          <dt>Hostname</dt>
          <dd>{s.hostname || '—'}</dd>
        </div>
        <div>
          <dt>Platform</dt>
          <dd>{s.platform || '—'}</dd>
        </div>
        <div>
          <dt>Agent</dt>
          <dd>{s.agentVersion || '—'}</dd>
        </div>
        <div>
          <dt>Scripts run as</dt>
          <dd data-testid="server-runs-scripts-as">
            {s.runsScriptsAs === null
              ? '—'
              : s.switchesUsers === false
                ? `${s.runsScriptsAs} (the agent itself: it cannot switch users)`
                : s.runsScriptsAs}
            {s.switchesUsers && s.allowRunAs && s.allowRunAs.length > 1 ? `; allowed: ${s.allowRunAs.join(', ')}` : ''}
          </dd>
        </div>
      </dl>
      <div class="kv-block">
        <span class="field-label">Install command</span>
        <CopyField value={install} testid="server-row-install-command" />
      </div>
      {isOwner && !editing && (
        <div class="row-actions">
          <button type="button" class="btn btn-small" onClick={() => setEditing(true)} data-testid="server-rename">
            Rename
          </button>
          <button type="button" class="btn btn-small" onClick={() => void props.onRotate()} data-testid="server-rotate-token">
            Rotate token
          </button>
          <button type="button" class="btn btn-small btn-danger-ghost" onClick={() => void props.onDelete()} data-testid="server-delete">
            Delete
          </button>
        </div>
      )}
    </div>
  );
}
