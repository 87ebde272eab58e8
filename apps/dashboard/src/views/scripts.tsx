import { useState } from 'preact/hooks';
import { INTERPRETERS, type Interpreter } from '@app/protocol/constants.js';
import type { ApiError } from '../api/client.js';
import type { Script } from '../api/types.js';
import { CodeEditor } from '../components/code-editor.js';
import { EmptyState, ErrorNotice, Field, Loading, PageHeader } from '../components/ui.js';
import { formatRelative } from '../lib/format.js';
import { Link, navigate } from '../lib/router.js';
import { toApiError, useResource, useSession } from '../lib/session.js';

export const STARTER: Record<Interpreter, string> = {
  bash: '#!/usr/bin/env bash\nset -euo pipefail\n\necho "Hello from $(hostname)"\n',
  sh: '#!/bin/sh\nset -eu\n\necho "Hello from $(hostname)"\n',
  python3: 'import socket\n\nprint(f"Hello from {socket.gethostname()}")\n',
  node: "const os = require('node:os');\n\nconsole.log(`Hello from ${os.hostname()}`);\n",
};

export function scriptVersion(s: Script): number {
  return s.version;
}

export function ScriptsView() {
  const { api, isOwner } = useSession();
  const scripts = useResource(() => api.listScripts(), [api]);
  const [creating, setCreating] = useState(false);
  const items = scripts.data?.items ?? [];
  const showForm = isOwner && (creating || (scripts.data !== undefined && items.length === 0));

  return (
    <div class="page">
      <PageHeader
        title="Scripts"
        sub="Saved scripts, versioned on every change. Run them on a server, or expose them as webhooks."
        actions={
          isOwner &&
          !showForm && (
            <button class="btn btn-primary" type="button" onClick={() => setCreating(true)} data-testid="script-new">
              New script
            </button>
          )
        }
      />
      <ErrorNotice error={scripts.error} title="Could not load scripts" />
      {scripts.loading && !scripts.data ? (
        <Loading />
      ) : items.length === 0 && !scripts.error ? (
        <EmptyState title="Create your first script" testid="scripts-empty">
          <p>
            A script is a bash, sh, Python or Node program saved here and run by the agent on a server you pick.{' '}
            {isOwner ? 'Write one below; every saved change becomes a new version.' : 'Ask an owner of this workspace to write one.'}
          </p>
        </EmptyState>
      ) : null}
      {showForm && <CreateScript onCancel={items.length ? () => setCreating(false) : undefined} />}
      {items.length > 0 && (
        <table class="table" data-testid="script-list">
          <thead>
            <tr>
              <th>Name</th>
              <th class="minor">Interpreter</th>
              <th>Version</th>
              <th class="minor">Timeout</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.id} data-testid="script-row" class="clickable" onClick={() => navigate(`/scripts/${s.id}`)}>
                <td>
                  <Link href={`/scripts/${s.id}`} class="strong" data-testid="script-link">
                    {s.name}
                  </Link>
                  {s.description && <div class="muted small">{s.description}</div>}
                </td>
                <td class="minor">
                  <span class="chip">{s.interpreter}</span>
                </td>
                <td>v{scriptVersion(s) ?? '?'}</td>
                <td class="minor">{s.timeoutSeconds} s</td>
                <td class="muted">{formatRelative(s.updatedAt ?? s.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function CreateScript({ onCancel }: { onCancel?: () => void }) {
  const { api } = useSession();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [interpreter, setInterpreter] = useState<Interpreter>('bash');
  const [content, setContent] = useState(STARTER.bash);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const pickInterpreter = (i: Interpreter) => {
    // Swap the starter only while the person has not written anything of their own.
    if (Object.values(STARTER).includes(content)) setContent(STARTER[i]);
    setInterpreter(i);
  };

  return (
    <form
      class="card form"
      data-testid="script-create-form"
      onSubmit={(e) => void (async () => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          const s = await api.createScript({ name: name.trim(), description: description.trim() || undefined, interpreter, content });
          navigate(`/scripts/${s.id}`);
        } catch (err) {
          setError(toApiError(err));
          setBusy(false);
        }
      })()}
    >
      <h2>New script</h2>
      <div class="grid-2">
        <Field label="Name">
          <input value={name} onInput={(e) => setName(e.currentTarget.value)} required placeholder="e.g. deploy" data-testid="script-name-input" />
        </Field>
        <Field label="Interpreter">
          <select value={interpreter} onChange={(e) => pickInterpreter(e.currentTarget.value as Interpreter)} data-testid="script-interpreter-select">
            {INTERPRETERS.map((i) => (
              <option key={i} value={i}>
                {i}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Field label="Description (optional)">
        <input value={description} onInput={(e) => setDescription(e.currentTarget.value)} data-testid="script-description-input" />
      </Field>
      <Field label="Content">
        <CodeEditor value={content} onChange={setContent} interpreter={interpreter} testid="script-content-input" rows={10} />
      </Field>
      <ErrorNotice error={error} title="Could not create the script" />
      <div class="form-actions">
        {onCancel && (
          <button type="button" class="btn btn-ghost" onClick={onCancel}>
            Cancel
          </button>
        )}
        <button type="submit" class="btn btn-primary" disabled={busy || !name.trim() || !content} data-testid="script-create-submit">
          {busy ? 'Creating…' : 'Create script'}
        </button>
      </div>
    </form>
  );
}
