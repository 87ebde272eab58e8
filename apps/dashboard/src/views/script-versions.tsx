import { diffLines } from 'diff';
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { ApiError } from '../api/client.js';
import type { Script, ScriptVersion } from '../api/types.js';
import { confirmAction, toast } from '../components/overlays.js';
import { ErrorNotice, Loading } from '../components/ui.js';
import { formatDateTime, formatRelative } from '../lib/format.js';
import { navigate, useLocation } from '../lib/router.js';
import { toApiError, useResource, useSession } from '../lib/session.js';
import { scriptVersion } from './scripts.js';

/** Version history and a line diff between two chosen versions (`?from=&to=` keeps the choice in the URL). */
export function VersionsTab({ script, onRestored }: { script: Script; onRestored: () => void }) {
  const { api, isOwner } = useSession();
  const { query } = useLocation();
  const versions = useResource(() => api.listVersions(script.id), [api, script.id, scriptVersion(script)]);
  // Older pages, loaded on demand after the first (newest) one; a new first page starts over.
  const [older, setOlder] = useState<{ items: ScriptVersion[]; nextCursor: string | null } | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  useEffect(() => setOlder(null), [versions.data]);
  const items = useMemo(() => {
    const seen = new Set<number>();
    return [...(versions.data?.items ?? []), ...(older?.items ?? [])]
      .filter((v) => !seen.has(v.version) && seen.add(v.version))
      .sort((a, b) => b.version - a.version);
  }, [versions.data, older]);
  const nextCursor = older ? older.nextCursor : (versions.data?.nextCursor ?? null);
  const latest = items[0]?.version;
  const to = Number(query.get('to') ?? latest ?? 0);
  const from = Number(query.get('from') ?? items.find((v) => v.version < to)?.version ?? to);
  const [error, setError] = useState<ApiError | null>(null);

  const loadMore = async () => {
    if (!nextCursor) return;
    setLoadingMore(true);
    try {
      const page = await api.listVersions(script.id, nextCursor);
      setOlder((prev) => ({ items: [...(prev?.items ?? []), ...page.items], nextCursor: page.nextCursor }));
      setError(null);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setLoadingMore(false);
    }
  };

  const choose = (f: number, t: number) => navigate(`/scripts/${script.id}/versions?from=${f}&to=${t}`, { replace: true });

  const restore = async (v: ScriptVersion) => {
    const ok = await confirmAction({
      title: `Restore version ${v.version}?`,
      body: 'Its content is saved as a new version; nothing is lost.',
      confirmLabel: 'Restore',
    });
    if (!ok) return;
    try {
      const full = v.content !== undefined ? v : await api.getVersion(script.id, v.version);
      await api.updateScript(script.id, { content: full.content ?? '' });
      toast(`Version ${v.version} restored as a new version`);
      onRestored();
    } catch (e) {
      setError(toApiError(e));
    }
  };

  if (versions.loading && !versions.data) return <Loading />;
  return (
    <div class="versions">
      <ErrorNotice error={versions.error ?? error} />
      <div class="card version-list" data-testid="version-list">
        <table class="table compact">
          <thead>
            <tr>
              <th>Version</th>
              <th>Saved</th>
              <th title="Older side of the diff">From</th>
              <th title="Newer side of the diff">To</th>
              {isOwner && <th />}
            </tr>
          </thead>
          <tbody>
            {items.map((v) => (
              <tr key={v.version} data-testid="version-row">
                <td>
                  <strong>v{v.version}</strong> {v.version === latest && <span class="chip chip-current">current</span>}
                </td>
                <td class="muted" title={formatDateTime(v.createdAt)}>
                  {formatRelative(v.createdAt)}
                </td>
                <td>
                  <input type="radio" name="from" checked={v.version === from} onChange={() => choose(v.version, to)} data-testid="diff-from" aria-label={`diff from v${v.version}`} />
                </td>
                <td>
                  <input type="radio" name="to" checked={v.version === to} onChange={() => choose(from, v.version)} data-testid="diff-to" aria-label={`diff to v${v.version}`} />
                </td>
                {isOwner && (
                  <td class="right">
                    {v.version !== latest && (
                      <button type="button" class="btn btn-small btn-ghost" onClick={() => void restore(v)}>
                        Restore
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {nextCursor && (
          <div class="load-more">
            <button type="button" class="btn" disabled={loadingMore} onClick={() => void loadMore()} data-testid="load-more-versions">
              {loadingMore ? 'Loading…' : 'Load older versions'}
            </button>
          </div>
        )}
      </div>
      {items.length > 0 && <VersionDiff scriptId={script.id} from={from} to={to} />}
    </div>
  );
}

function VersionDiff({ scriptId, from, to }: { scriptId: string; from: number; to: number }) {
  const { api } = useSession();
  const pair = useResource(
    () => Promise.all([api.getVersion(scriptId, from), api.getVersion(scriptId, to)]),
    [api, scriptId, from, to],
  );
  const rows = useMemo(() => {
    if (!pair.data) return [];
    const [a, b] = pair.data;
    return diffRows(a.content ?? '', b.content ?? '');
  }, [pair.data]);
  const added = rows.filter((r) => r.kind === 'add').length;
  const removed = rows.filter((r) => r.kind === 'del').length;

  return (
    <div class="card diff-card">
      <div class="diff-head">
        <strong>
          v{from} → v{to}
        </strong>
        <span class="diff-stat">
          <span class="plus">+{added}</span> <span class="minus">−{removed}</span>
        </span>
      </div>
      <ErrorNotice error={pair.error} title="Could not load the versions" />
      {pair.loading && !pair.data ? (
        <Loading />
      ) : from === to ? (
        <p class="muted pad">Pick two different versions to see what changed.</p>
      ) : (
        <div class="diff" tabIndex={0} aria-label={`Changes from v${from} to v${to}`} data-testid="version-diff">
          {rows.map((r, i) => (
            <div key={i} class={`diff-line diff-${r.kind}`} data-testid="diff-line" data-kind={r.kind}>
              <span class="ln">{r.oldNo ?? ''}</span>
              <span class="ln">{r.newNo ?? ''}</span>
              <span class="sign">{r.kind === 'add' ? '+' : r.kind === 'del' ? '−' : ' '}</span>
              <span class="text">{r.text}</span>
            </div>
          ))}
        </div>
      )}
    </div>
  );
}

interface DiffRow {
  kind: 'add' | 'del' | 'same';
  text: string;
  oldNo?: number;
  newNo?: number;
}

function diffRows(a: string, b: string): DiffRow[] {
  const rows: DiffRow[] = [];
  let oldNo = 1;
  let newNo = 1;
  for (const part of diffLines(a, b)) {
    const lines = part.value.replace(/\n$/, '').split('\n');
    for (const text of lines) {
      if (part.added) rows.push({ kind: 'add', text, newNo: newNo++ });
      else if (part.removed) rows.push({ kind: 'del', text, oldNo: oldNo++ });
      else rows.push({ kind: 'same', text, oldNo: oldNo++, newNo: newNo++ });
    }
  }
  return rows;
}
