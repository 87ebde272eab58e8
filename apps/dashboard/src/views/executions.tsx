import { useEffect, useState } from 'preact/hooks';
import { EXECUTION_STATUSES, TRIGGERS, isTerminal } from '@app/protocol/constants.js';
import type { ApiError } from '../api/client.js';
import type { Execution, ExecutionRow, WorkspaceSettings } from '../api/types.js';
import { EmptyState, ErrorNotice, Loading, PageHeader, StatusBadge, TriggerTag } from '../components/ui.js';
import { formatBytes, formatDateTime, formatDuration, formatRelative } from '../lib/format.js';
import { useNames, useWebhookName } from '../lib/names.js';
import { Link, navigate, useLocation } from '../lib/router.js';
import { toApiError, useFeedEvent, useSession } from '../lib/session.js';

const FILTERS = ['scriptId', 'serverId', 'status', 'trigger', 'webhookId'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;
const PAGE = 50;

export function ExecutionsView() {
  const { api } = useSession();
  const { query } = useLocation();
  const filters: Filters = {};
  for (const f of FILTERS) {
    const v = query.get(f);
    if (v) filters[f] = v;
  }
  const key = JSON.stringify(filters);
  const [rows, setRows] = useState<ExecutionRow[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const names = useNames(rows);
  const filterWebhookName = useWebhookName(filters.webhookId);

  const load = async (after: string | null) => {
    setLoading(true);
    try {
      const page = await api.listExecutions({ ...filters, limit: PAGE, cursor: after });
      setRows((prev) => (after ? [...prev, ...page.items.filter((r) => !prev.some((p) => p.id === r.id))] : page.items));
      setCursor(page.nextCursor ?? null);
      setError(null);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    setRows([]);
    void load(null);
  }, [api, key]);

  const setFilter = (name: keyof Filters, value: string) => {
    const next = new URLSearchParams(query);
    if (value) next.set(name, value);
    else next.delete(name);
    const qs = next.toString();
    navigate(`/executions${qs ? `?${qs}` : ''}`, { replace: true });
  };

  const refresh = (id: string) =>
    api.getExecution(id).then(
      (full) => setRows((rs) => rs.map((r) => (r.id === id ? { ...r, ...full } : r))),
      () => undefined,
    );

  useFeedEvent('execution.created', (e) => {
    const row: ExecutionRow = {
      id: e.executionId,
      scriptId: e.scriptId,
      serverId: e.serverId,
      webhookId: e.webhookId,
      trigger: e.trigger as Execution['trigger'],
      status: e.status,
      exitCode: null,
      queuedAt: new Date().toISOString(),
    };
    const matches = FILTERS.every((f) => !filters[f] || filters[f] === (f === 'status' ? row.status : row[f]));
    if (!matches) return;
    setRows((rs) => (rs.some((r) => r.id === row.id) ? rs : [row, ...rs]));
    void refresh(row.id);
  });
  useFeedEvent('execution.status', (e) => {
    setRows((rs) => rs.map((r) => (r.id === e.executionId ? { ...r, status: e.status, exitCode: e.exitCode ?? r.exitCode } : r)));
    if (isTerminal(e.status) && rows.some((r) => r.id === e.executionId)) void refresh(e.executionId);
  });

  const active = FILTERS.some((f) => filters[f]);
  return (
    <div class="page">
      <PageHeader title="Executions" sub="Every run, newest first, tagged with what triggered it. New runs appear here live." />
      <StorageUsage />
      <div class="filters card" data-testid="execution-filters">
        <select value={filters.scriptId ?? ''} onChange={(e) => setFilter('scriptId', e.currentTarget.value)} data-testid="filter-script" aria-label="Script">
          <option value="">All scripts</option>
          {names.scripts.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
        <select value={filters.serverId ?? ''} onChange={(e) => setFilter('serverId', e.currentTarget.value)} data-testid="filter-server" aria-label="Server">
          <option value="">All servers</option>
          {names.servers.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
        <select value={filters.status ?? ''} onChange={(e) => setFilter('status', e.currentTarget.value)} data-testid="filter-status" aria-label="Status">
          <option value="">Any status</option>
          {EXECUTION_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s.replace('_', ' ')}
            </option>
          ))}
        </select>
        <select value={filters.trigger ?? ''} onChange={(e) => setFilter('trigger', e.currentTarget.value)} data-testid="filter-trigger" aria-label="Trigger">
          <option value="">Any trigger</option>
          {/* `api` stays in the API's enum, but nothing produces it yet: offering it would only ever match nothing. */}
          {TRIGGERS.filter((t) => t !== 'api').map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
        {filters.webhookId && (
          <span class="chip chip-filter" data-testid="filter-webhook-chip">
            webhook {filterWebhookName ?? filters.webhookId.slice(0, 8)}
            <button type="button" aria-label="Remove webhook filter" onClick={() => setFilter('webhookId', '')}>
              ×
            </button>
          </span>
        )}
        {active && (
          <button type="button" class="btn btn-small btn-ghost" onClick={() => navigate('/executions', { replace: true })} data-testid="filter-clear">
            Clear filters
          </button>
        )}
      </div>
      <ErrorNotice error={error} title="Could not load executions" />
      {loading && rows.length === 0 ? (
        <Loading />
      ) : rows.length === 0 && !error ? (
        <EmptyState title={active ? 'No executions match these filters' : 'No executions yet'} testid="executions-empty">
          {active ? (
            <p>Try another filter, or clear them.</p>
          ) : (
            <p>
              Runs appear here as soon as they start. Open a <Link href="/scripts">script</Link> and press <em>Run now</em>, or
              create a webhook on its Webhooks tab and call it.
            </p>
          )}
        </EmptyState>
      ) : (
        <table class="table executions" data-testid="execution-list">
          <thead>
            <tr>
              <th>Status</th>
              <th>Script</th>
              <th>Trigger</th>
              <th>Server</th>
              <th>Started</th>
              <th class="right">Duration</th>
              <th class="right">Exit</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const when = r.startedAt ?? r.queuedAt;
              return (
                <tr key={r.id} class="clickable" data-testid="execution-row" data-execution-id={r.id} onClick={() => navigate(`/executions/${r.id}`)}>
                  <td title={r.error ?? undefined}>
                    <StatusBadge status={r.status} testid="execution-row-status" />
                    {r.error && (
                      <span class="row-reason muted small" data-testid="execution-row-reason">
                        {r.error}
                      </span>
                    )}
                  </td>
                  <td>
                    <Link href={`/executions/${r.id}`} class="strong" data-testid="execution-link">
                      {names.script(r)}
                    </Link>
                    {r.scriptVersion !== undefined && <span class="muted small"> v{r.scriptVersion}</span>}
                  </td>
                  <td>
                    <TriggerTag trigger={r.trigger} webhookName={names.webhook(r)} />
                  </td>
                  <td>{names.server(r)}</td>
                  <td class="muted" title={formatDateTime(when)}>
                    {formatRelative(when)}
                  </td>
                  <td class="right mono">{formatDuration(r.durationMs)}</td>
                  <td class={`right mono${r.exitCode || r.signal ? ' bad' : ''}`} data-testid="execution-row-exit">
                    {r.exitCode ?? r.signal ?? '—'}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {cursor && (
        <div class="load-more">
          <button type="button" class="btn" disabled={loading} onClick={() => void load(cursor)} data-testid="load-more">
            {loading ? 'Loading…' : 'Load more'}
          </button>
        </div>
      )}
    </div>
  );
}

/** Output stored by the workspace against its quota, and how long output is kept. */
function StorageUsage() {
  const { api } = useSession();
  const [ws, setWs] = useState<WorkspaceSettings | null>(null);
  useEffect(() => {
    api.getWorkspace().then(setWs, () => setWs(null));
  }, [api]);
  if (!ws) return null;
  const share = ws.outputQuotaBytes > 0 ? Math.min(1, ws.outputBytes / ws.outputQuotaBytes) : 1;
  return (
    <p class="muted small storage-usage" data-testid="storage-usage">
      Output stored: <strong>{formatBytes(ws.outputBytes)}</strong> of {formatBytes(ws.outputQuotaBytes)} ({Math.round(share * 100)}%) ·
      kept {ws.outputRetention}, deliveries {ws.deliveryRetention}
    </p>
  );
}
