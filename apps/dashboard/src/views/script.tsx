import { useEffect, useState } from 'preact/hooks';
import { INTERPRETERS, type Interpreter } from '@app/protocol/constants.js';
import type { ApiError } from '../api/client.js';
import type { Script } from '../api/types.js';
import { CodeEditor } from '../components/code-editor.js';
import { confirmAction, toast } from '../components/overlays.js';
import { ErrorNotice, Field, Loading, PageHeader } from '../components/ui.js';
import { namesFor } from './secrets.js';
import { formatBytes } from '../lib/format.js';
import { Link, navigate } from '../lib/router.js';
import { toApiError, useResource, useSession } from '../lib/session.js';
import { scriptVersion } from './scripts.js';
import { VersionsTab } from './script-versions.js';
import { WebhooksTab } from './webhooks.js';

export type ScriptTab = 'editor' | 'versions' | 'webhooks';

export function ScriptView({ id, tab }: { id: string; tab: ScriptTab }) {
  const { api, isOwner } = useSession();
  const script = useResource(() => api.getScript(id), [api, id]);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);

  if (script.loading && !script.data) return <Loading />;
  if (!script.data) return <ErrorNotice error={script.error} title="Could not load the script" />;
  const s = script.data;
  const version = scriptVersion(s);

  const remove = async () => {
    const ok = await confirmAction({
      title: `Delete script “${s.name}”?`,
      body: 'Its versions and webhooks are deleted too; webhook tokens stop working at once. Past executions stay in the history.',
      confirmLabel: 'Delete script',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.deleteScript(s.id);
      toast(`Script “${s.name}” deleted`);
      navigate('/scripts');
    } catch (e) {
      setDeleteError(toApiError(e));
    }
  };

  return (
    <div class="page">
      <div class="crumbs">
        <Link href="/scripts">Scripts</Link> /
      </div>
      <PageHeader
        title={
          <>
            {s.name} <span class="chip">{s.interpreter}</span>{' '}
            {version !== undefined && (
              <span class="chip chip-version" data-testid="script-version">
                v{version}
              </span>
            )}
          </>
        }
        sub={s.description || undefined}
        actions={isOwner && <RunNow scriptId={s.id} declared={s.secrets ?? []} />}
      />
      <nav class="tabs" aria-label="Script sections">
        <Link href={`/scripts/${s.id}`} class={tab === 'editor' ? 'active' : ''} aria-current={tab === 'editor' ? 'page' : undefined} data-testid="tab-editor">
          Script
        </Link>
        <Link href={`/scripts/${s.id}/versions`} class={tab === 'versions' ? 'active' : ''} aria-current={tab === 'versions' ? 'page' : undefined} data-testid="tab-versions">
          Versions
        </Link>
        <Link href={`/scripts/${s.id}/webhooks`} class={tab === 'webhooks' ? 'active' : ''} aria-current={tab === 'webhooks' ? 'page' : undefined} data-testid="tab-webhooks">
          Webhooks
        </Link>
        <Link href={`/executions?scriptId=${encodeURIComponent(s.id)}`} data-testid="tab-executions">
          Executions →
        </Link>
      </nav>
      <ErrorNotice error={deleteError} title="Could not delete the script" />
      {tab === 'editor' && (
        <ScriptEditor script={s} onSaved={(next) => script.setData(() => next)} onDelete={isOwner ? () => void remove() : undefined} />
      )}
      {tab === 'versions' && <VersionsTab script={s} onRestored={script.reload} />}
      {tab === 'webhooks' && <WebhooksTab script={s} />}
    </div>
  );
}

function RunNow({ scriptId, declared }: { scriptId: string; declared: string[] }) {
  const { api } = useSession();
  const servers = useResource(() => api.listServers(), [api]);
  const secrets = useResource(() => api.listSecrets(), [api]);
  const [serverId, setServerId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const items = servers.data?.items ?? [];
  useEffect(() => {
    // A default only while nothing is chosen: an effect of an earlier render must not undo a choice made since.
    if (!serverId && items.length) setServerId((chosen) => chosen || (items.find((s) => s.status === 'online') ?? items[0]!).id);
  }, [items, serverId]);

  return (
    <div class="run-now">
      <form
        class="run-now-form"
        data-testid="run-form"
        onSubmit={(e) => void (async () => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const r = await api.runScript(scriptId, serverId);
            navigate(`/executions/${r.executionId}`);
          } catch (err) {
            setError(toApiError(err));
            setBusy(false);
          }
        })()}
      >
        <select value={serverId} onChange={(e) => setServerId(e.currentTarget.value)} data-testid="run-server-select" aria-label="Server">
          {items.length === 0 && <option value="">No servers</option>}
          {items.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name} ({s.status})
            </option>
          ))}
        </select>
        <button type="submit" class="btn btn-primary" disabled={busy || !serverId} data-testid="run-submit">
          {busy ? 'Starting…' : '▶ Run now'}
        </button>
      </form>
      {serverId && secrets.data && <MissingSecrets declared={declared} defined={namesFor(secrets.data.items, serverId)} where="this server" />}
      <ErrorNotice error={error} title="Could not run" />
    </div>
  );
}

/** Names a script declares that runs on a server could not get: such a run fails before it starts. */
function MissingSecrets({ declared, defined, where }: { declared: string[]; defined: Set<string>; where: string }) {
  const missing = declared.filter((n) => !defined.has(n));
  if (missing.length === 0) return null;
  return (
    <p class="notice notice-warn small" data-testid="secrets-missing">
      Not defined for {where}: <span class="mono">{missing.join(', ')}</span>. A run there fails before it starts.
    </p>
  );
}

/** Which secrets the script's runs get: picked from the names defined, with a warning per webhook server lacking one. */
function SecretsField({ scriptId, value, readOnly, onChange }: { scriptId: string; value: string[]; readOnly: boolean; onChange: (v: string[]) => void }) {
  const { api } = useSession();
  const secrets = useResource(() => api.listSecrets(), [api]);
  const webhooks = useResource(() => api.listWebhooks(scriptId), [api, scriptId]);
  const servers = useResource(() => api.listServers(), [api]);
  const all = secrets.data?.items ?? [];
  const names = [...new Set([...all.map((s) => s.name), ...value])].sort();
  const targets = [...new Set((webhooks.data?.items ?? []).map((w) => w.serverId))];
  const serverName = (id: string) => servers.data?.items.find((s) => s.id === id)?.name ?? id.slice(0, 8);
  return (
    <Field label="Secrets" hint={names.length ? 'Its runs get these as environment variables; changing them creates a new version.' : 'No secrets yet: add them on the Secrets page.'}>
      <div class="secret-picks" data-testid="script-secrets">
        {names.map((n) => (
          <label key={n}>
            <input
              type="checkbox"
              checked={value.includes(n)}
              disabled={readOnly}
              onChange={(e) => onChange(e.currentTarget.checked ? [...value, n].sort() : value.filter((x) => x !== n))}
              data-testid={`script-secret-${n}`}
            />
            {n}
          </label>
        ))}
      </div>
      {secrets.data &&
        targets.map((serverId) => (
          <MissingSecrets key={serverId} declared={value} defined={namesFor(all, serverId)} where={`server ${serverName(serverId)} (a webhook of this script runs there)`} />
        ))}
    </Field>
  );
}

function ScriptEditor({ script, onSaved, onDelete }: { script: Script; onSaved: (s: Script) => void; onDelete?: () => void }) {
  const { api, isOwner } = useSession();
  const [draft, setDraft] = useState(() => ({ ...script, content: script.content ?? '' }));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  useEffect(() => setDraft({ ...script, content: script.content ?? '' }), [script]);

  const changes: Partial<Script> = {};
  if (draft.name !== script.name) changes.name = draft.name.trim();
  if ((draft.description ?? '') !== (script.description ?? '')) changes.description = draft.description ?? '';
  if (draft.interpreter !== script.interpreter) changes.interpreter = draft.interpreter;
  if (draft.timeoutSeconds !== script.timeoutSeconds) changes.timeoutSeconds = draft.timeoutSeconds;
  if (draft.maxOutputBytes !== script.maxOutputBytes) changes.maxOutputBytes = draft.maxOutputBytes;
  if (draft.content !== (script.content ?? '')) changes.content = draft.content;
  if ((draft.secrets ?? []).join() !== (script.secrets ?? []).join()) changes.secrets = draft.secrets ?? [];
  if ((draft.runAs ?? '') !== (script.runAs ?? '')) changes.runAs = draft.runAs?.trim() || null;
  const dirty = Object.keys(changes).length > 0;
  const readOnly = !isOwner;

  const save = async () => {
    if (!dirty || busy || readOnly) return;
    setBusy(true);
    setError(null);
    try {
      const before = scriptVersion(script);
      const next = await api.updateScript(script.id, changes);
      const merged = { ...script, ...changes, ...next };
      const after = scriptVersion(merged);
      setSaved(after !== undefined && after !== before ? `Saved as version ${after}` : 'Saved');
      setTimeout(() => setSaved(null), 4000);
      onSaved(merged);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };

  const set = <K extends keyof Script>(k: K, v: Script[K]) => setDraft((d) => ({ ...d, [k]: v }));
  return (
    <form
      class="card form"
      data-testid="script-edit-form"
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <div class="grid-2">
        <Field label="Name">
          <input value={draft.name} readOnly={readOnly} onInput={(e) => set('name', e.currentTarget.value)} required data-testid="script-edit-name" />
        </Field>
        <Field label="Interpreter">
          <select value={draft.interpreter} disabled={readOnly} onChange={(e) => set('interpreter', e.currentTarget.value as Interpreter)} data-testid="script-edit-interpreter">
            {INTERPRETERS.map((i) => (
              <option key={i} value={i}>
                {i}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Field label="Description">
        <input value={draft.description ?? ''} readOnly={readOnly} onInput={(e) => set('description', e.currentTarget.value)} data-testid="script-edit-description" />
      </Field>
      <div class="grid-2">
        <Field label="Timeout (seconds)" hint="1 to 3600; the script is stopped after this long.">
          <input type="number" min={1} max={3600} value={draft.timeoutSeconds} readOnly={readOnly} onInput={(e) => set('timeoutSeconds', e.currentTarget.valueAsNumber)} data-testid="script-edit-timeout" />
        </Field>
        <Field label="Max output kept (bytes)" hint={`${formatBytes(draft.maxOutputBytes)}; output past this is drained but not stored.`}>
          <input type="number" min={0} value={draft.maxOutputBytes} readOnly={readOnly} onInput={(e) => set('maxOutputBytes', e.currentTarget.valueAsNumber)} data-testid="script-edit-max-output" />
        </Field>
      </div>
      <SecretsField scriptId={script.id} value={draft.secrets ?? []} readOnly={readOnly} onChange={(v) => set('secrets', v)} />
      <Field
        label="Run as user"
        hint="Empty: the agent's own script user (devpilot-run). Another user must be allowed by the agent (--allow-run-as) or the run fails before it starts. A change creates a new version."
      >
        <input value={draft.runAs ?? ''} maxLength={32} readOnly={readOnly} placeholder="devpilot-run" onInput={(e) => set('runAs', e.currentTarget.value)} data-testid="script-edit-run-as" />
      </Field>
      <Field label="Content" hint={isOwner ? 'Tab indents, Shift+Tab dedents, Esc then Tab leaves the editor, Ctrl+S saves. A content change creates a new version.' : undefined}>
        <CodeEditor value={draft.content} onChange={(v) => set('content', v)} interpreter={draft.interpreter} readOnly={readOnly} testid="script-edit-content" onSave={() => void save()} />
      </Field>
      <ErrorNotice error={error} title="Could not save" />
      {isOwner && (
        <div class="form-actions">
          {onDelete && (
            <button type="button" class="btn btn-danger-ghost push-left" onClick={onDelete} data-testid="script-delete">
              Delete script
            </button>
          )}
          {saved && (
            <span class="saved" data-testid="script-saved">
              {saved}
            </span>
          )}
          {dirty && <span class="muted small">Unsaved changes</span>}
          <button type="submit" class="btn btn-primary" disabled={!dirty || busy} data-testid="script-save">
            {busy ? 'Saving…' : 'Save'}
          </button>
        </div>
      )}
    </form>
  );
}
