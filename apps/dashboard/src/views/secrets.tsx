import { useState } from 'preact/hooks';
import type { ApiError } from '../api/client.js';
import type { Secret, Server } from '../api/types.js';
import { confirmAction, toast } from '../components/overlays.js';
import { EmptyState, ErrorNotice, Field, Loading, PageHeader } from '../components/ui.js';
import { formatRelative } from '../lib/format.js';
import { toApiError, useResource, useSession } from '../lib/session.js';

/** Names the platform keeps for itself (the control plane refuses them too). */
const RESERVED = /^(DEVPILOT_.*|LD_.*|PATH|HOME|USER|SHELL|BASH_ENV|ENV|IFS|PS4|NODE_OPTIONS)$/;

/** Which secret names runs on `serverId` can get: the workspace's and the server's own. */
export function namesFor(secrets: Secret[], serverId: string): Set<string> {
  return new Set(secrets.filter((s) => s.serverId === null || s.serverId === serverId).map((s) => s.name));
}

export function SecretsView() {
  const { api, isOwner } = useSession();
  const secrets = useResource(() => api.listSecrets(), [api]);
  const servers = useResource(() => api.listServers(), [api]);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const serverName = (id: string | null) => (id === null ? 'all servers' : (servers.data?.items.find((s) => s.id === id)?.name ?? 'a deleted server'));
  const items = secrets.data?.items ?? [];

  return (
    <div class="page">
      <PageHeader
        title="Secrets"
        sub="Values scripts get as environment variables, kept encrypted and never shown again. A script lists the names it uses; a server's own value wins over the workspace's."
      />
      {isOwner && <CreateSecret servers={servers.data?.items ?? []} onCreated={() => secrets.reload()} />}
      <ErrorNotice error={secrets.error} title="Could not load secrets" />
      <ErrorNotice error={actionError} />
      {secrets.loading && !secrets.data ? (
        <Loading />
      ) : items.length === 0 && !secrets.error ? (
        <EmptyState title="No secrets yet" testid="secrets-empty">
          <p>{isOwner ? 'Add one above, then list its name in a script’s Secrets field.' : 'Ask an owner to add secrets.'}</p>
        </EmptyState>
      ) : (
        <div class="table-wrap" tabIndex={0} aria-label="Secrets">
          <table class="table" data-testid="secret-list">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">For</th>
                <th scope="col">Changed</th>
                {isOwner && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <SecretRow
                  key={s.id}
                  secret={s}
                  scope={serverName(s.serverId)}
                  isOwner={isOwner}
                  onError={setActionError}
                  onChanged={() => secrets.reload()}
                  onDelete={async () => {
                    setActionError(null);
                    const ok = await confirmAction({
                      title: `Delete secret ${s.name} (${serverName(s.serverId)})?`,
                      body: 'Runs not yet started of scripts that list it fail before they start, unless another value of that name applies.',
                      confirmLabel: 'Delete secret',
                      danger: true,
                    });
                    if (!ok) return;
                    try {
                      await api.deleteSecret(s.id);
                      toast(`Secret ${s.name} deleted`);
                      secrets.reload();
                    } catch (e) {
                      setActionError(toApiError(e));
                    }
                  }}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function SecretRow(props: { secret: Secret; scope: string; isOwner: boolean; onChanged: () => void; onDelete: () => Promise<void>; onError: (e: ApiError | null) => void }) {
  const { api } = useSession();
  const { secret: s } = props;
  const [replacing, setReplacing] = useState(false);
  const [value, setValue] = useState('');
  const replace = async (e: Event) => {
    e.preventDefault();
    props.onError(null);
    try {
      await api.replaceSecret(s.id, value);
      setValue('');
      setReplacing(false);
      toast(`New value of ${s.name} saved`);
      props.onChanged();
    } catch (err) {
      props.onError(toApiError(err));
    }
  };
  return (
    <tr data-testid="secret-row">
      <td class="mono" data-testid="secret-name">
        {s.name}
      </td>
      <td>{props.scope}</td>
      <td title={s.updatedAt}>{formatRelative(s.updatedAt)}</td>
      {props.isOwner && (
        <td>
          {replacing ? (
            <form
              class="inline-form"
              onSubmit={(e) => void replace(e)}
            >
              <input type="password" autoComplete="new-password" aria-label={`New value of ${s.name}`} value={value} onInput={(e) => setValue(e.currentTarget.value)} required data-testid="secret-new-value" />
              <button type="submit" class="btn btn-small btn-primary" data-testid="secret-replace-submit">
                Save
              </button>
              <button type="button" class="btn btn-small btn-ghost" onClick={() => setReplacing(false)}>
                Keep the old value
              </button>
            </form>
          ) : (
            <div class="row-actions">
              <button type="button" class="btn btn-small" onClick={() => setReplacing(true)} data-testid="secret-replace">
                Replace value
              </button>
              <button type="button" class="btn btn-small btn-danger-ghost" onClick={() => void props.onDelete()} data-testid="secret-delete">
                Delete
              </button>
            </div>
          )}
        </td>
      )}
    </tr>
  );
}

function CreateSecret({ servers, onCreated }: { servers: Server[]; onCreated: () => void }) {
  const { api } = useSession();
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [serverId, setServerId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = await api.createSecret({ name, value, ...(serverId ? { serverId } : {}) });
      toast(`Secret ${created.name} saved`);
      setName('');
      setValue('');
      onCreated();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };
  const nameProblem = name && (!/^[A-Z][A-Z0-9_]*$/.test(name) ? 'Capital letters, digits and _ only, starting with a letter' : RESERVED.test(name) ? 'This name is reserved for the platform' : null);
  return (
    <form class="card form" data-testid="secret-create-form" onSubmit={(e) => void create(e)}>
      <div class="grid-2">
        <Field label="Name" hint={nameProblem || 'The environment variable the script reads, e.g. DB_PASSWORD.'}>
          <input value={name} onInput={(e) => setName(e.currentTarget.value.toUpperCase())} maxLength={64} required data-testid="secret-name-input" />
        </Field>
        <Field label="For">
          <select value={serverId} onChange={(e) => setServerId(e.currentTarget.value)} data-testid="secret-scope-select">
            <option value="">All servers of the workspace</option>
            {servers.map((s) => (
              <option key={s.id} value={s.id}>
                Only {s.name}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Field label="Value" hint="Encrypted at rest and never shown again; replaced by *** in the output of runs (values of 6 bytes or more).">
        <input type="password" autoComplete="new-password" value={value} onInput={(e) => setValue(e.currentTarget.value)} required data-testid="secret-value-input" />
      </Field>
      <ErrorNotice error={error} title="Could not save the secret" />
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !!nameProblem} data-testid="secret-create-submit">
          {busy ? 'Saving…' : 'Add secret'}
        </button>
      </div>
    </form>
  );
}
