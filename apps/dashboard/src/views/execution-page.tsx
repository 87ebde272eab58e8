import { useEffect, useRef, useState } from 'preact/hooks';
import { DashboardEvents } from '@app/protocol/events.js';
import { isTerminal } from '@app/protocol/constants.js';
import type { ExecutionOutputEvent, SubscribeReply } from '@app/protocol/messages.js';
import { ApiError } from '../api/client.js';
import type { Execution } from '../api/types.js';
import { confirmAction, toast } from '../components/overlays.js';
import { ErrorNotice, Loading, StatusBadge, TriggerTag } from '../components/ui.js';
import { formatBytes, formatDateTime, formatDuration, shortId } from '../lib/format.js';
import { useNames } from '../lib/names.js';
import { Link } from '../lib/router.js';
import { toApiError, useFeedEvent, useResource, useSession } from '../lib/session.js';
import { OutputBuffer, toBytes } from '../output/output-buffer.js';
import { OutputPane } from '../output/output-pane.js';

export function ExecutionPage({ id }: { id: string }) {
  const { api, isOwner } = useSession();
  const exec = useResource(() => api.getExecution(id), [api, id]);
  const names = useNames(exec.data ? [exec.data] : []);
  const { buffer, version, feedError } = useLiveOutput(id, exec.reload);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [cancelling, setCancelling] = useState(false);
  const now = useNow(exec.data && !isTerminal(exec.data.status) ? 1000 : 0);

  useFeedEvent('execution.status', (e) => {
    if (e.executionId !== id) return;
    exec.setData((x) => x && { ...x, status: e.status, exitCode: e.exitCode ?? x.exitCode });
    // Timestamps and duration are the server's: fetch them when the status moves.
    exec.reload();
  });

  if (exec.loading && !exec.data) return <Loading />;
  if (!exec.data) return <ErrorNotice error={exec.error} title="Could not load the execution" />;
  const x = exec.data;
  const live = !isTerminal(x.status);
  const duration = x.durationMs ?? (x.startedAt ? (x.finishedAt ? Date.parse(x.finishedAt) : now) - Date.parse(x.startedAt) : null);

  const cancel = async () => {
    const ok = await confirmAction({
      title: 'Cancel this execution?',
      body: 'A running script gets SIGTERM, then SIGKILL after a grace period. A queued one never starts.',
      confirmLabel: 'Cancel execution',
      cancelLabel: 'Keep running',
      danger: true,
    });
    if (!ok) return;
    setCancelling(true);
    setActionError(null);
    try {
      const after = await api.cancelExecution(id);
      toast(isTerminal(after.status) ? 'Execution cancelled' : 'Cancel sent to the agent');
      exec.reload();
    } catch (e) {
      setActionError(toApiError(e));
    } finally {
      setCancelling(false);
    }
  };

  const openRaw = async (download: boolean) => {
    setActionError(null);
    try {
      const blob = new Blob([await api.outputBlob(id)], { type: 'text/plain; charset=utf-8' });
      const url = URL.createObjectURL(blob);
      if (download) {
        const a = document.createElement('a');
        a.href = url;
        a.download = `execution-${id}.log`;
        a.click();
      } else window.open(url, '_blank', 'noopener');
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      setActionError(toApiError(e));
    }
  };

  return (
    <div class="page execution-page">
      <div class="crumbs">
        <Link href="/executions">Executions</Link> / <span class="mono">{shortId(id)}</span>
      </div>
      <div class="exec-header card" data-testid="execution-header">
        <div class="exec-title">
          <h1>
            <Link href={`/scripts/${x.scriptId}`} data-testid="execution-script">
              {names.script(x)}
            </Link>
            {x.scriptVersion !== undefined && <span class="chip chip-version">v{x.scriptVersion}</span>}
          </h1>
          <div class="exec-tags">
            <StatusBadge status={x.status} />
            <TriggerTag trigger={x.trigger} webhookName={names.webhook(x)} />
            <span class="muted">
              on <strong data-testid="execution-server">{names.server(x)}</strong>
            </span>
          </div>
        </div>
        <div class="exec-actions">
          <button type="button" class="btn btn-small" onClick={() => void openRaw(false)} data-testid="execution-raw-output">
            Raw output
          </button>
          <button type="button" class="btn btn-small btn-ghost" onClick={() => void openRaw(true)} data-testid="execution-download-output">
            Download
          </button>
          {isOwner && live && (
            <button type="button" class="btn btn-small btn-danger" disabled={cancelling} onClick={() => void cancel()} data-testid="execution-cancel">
              {cancelling ? 'Cancelling…' : 'Cancel'}
            </button>
          )}
        </div>
        <dl class="facts exec-facts">
          <div>
            <dt>Exit code</dt>
            <dd class={`mono${x.exitCode ? ' bad' : ''}`} data-testid="execution-exit-code">
              {x.exitCode ?? (x.signal ? x.signal : '—')}
            </dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd class="mono" data-testid="execution-duration">
              {formatDuration(duration)}
            </dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd data-testid="execution-started">{formatDateTime(x.startedAt)}</dd>
          </div>
          <div>
            <dt>Finished</dt>
            <dd data-testid="execution-finished">{formatDateTime(x.finishedAt)}</dd>
          </div>
          <div>
            <dt>Output</dt>
            <dd data-testid="execution-output-bytes">
              {/* While it runs the stored count lags the chunks already shown: count what arrived. */}
              {formatBytes(live ? Math.max(x.outputBytes, buffer.bytes) : x.outputBytes)}
              {x.outputTruncated && (
                <span class="chip chip-warn" data-testid="execution-truncated">
                  {x.outputTruncatedBy === 'workspace_quota' ? 'truncated: workspace quota' : 'truncated'}
                </span>
              )}
            </dd>
          </div>
        </dl>
        {x.error && (
          <p class="exec-reason" data-testid="execution-reason">
            <strong>Reason:</strong> {x.error}
          </p>
        )}
      </div>
      <ErrorNotice error={actionError} />
      <ErrorNotice error={feedError} title="Live output unavailable" />
      {x.outputExpiredAt ? (
        <div class="card notice" data-testid="execution-output-expired">
          Output expired: removed by retention on {formatDateTime(x.outputExpiredAt)}. The run's status, times and byte count are kept.
        </div>
      ) : (
        <>
          <OutputPane buffer={buffer} version={version} empty={emptyText(x, names.server(x))} />
          <p class="muted small" data-testid="output-order-note">
            stdout and stderr are each kept byte for byte and in order. Between the two streams, lines appear in the order the agent read
            them: lines written to both without a pause may show grouped by stream.
          </p>
        </>
      )}
      {x.outputTruncated && (
        <p class="muted small">
          {x.outputTruncatedBy === 'workspace_quota'
            ? "The workspace's storage quota was reached during this run; the rest was drained but not stored."
            : "The output passed the script's limit of kept bytes; the rest was drained but not stored."}
        </p>
      )}
    </div>
  );
}

function emptyText(x: Execution, server: string): string {
  switch (x.status) {
    case 'queued':
      return `Queued: waiting for the agent on ${server} to come online…`;
    case 'dispatched':
      return `Sent to ${server}, waiting for the agent to start it…`;
    case 'running':
      return 'Running; no output yet…';
    case 'undeliverable':
      return `The agent on ${server} did not come online in time; the script never ran.`;
    default:
      return 'This execution wrote no output.';
  }
}

/**
 * Subscribes to the execution's output on the /dashboard feed and appends it in batches, once per
 * animation frame. Resubscribes from the last contiguous seq after a reconnect or when asked to.
 */
function useLiveOutput(executionId: string, onReconnect: () => void) {
  const { feed } = useSession();
  const bufferRef = useRef<OutputBuffer | null>(null);
  if (!bufferRef.current) bufferRef.current = new OutputBuffer();
  const buffer = bufferRef.current;
  const [version, setVersion] = useState(0);
  const [feedError, setFeedError] = useState<ApiError | null>(null);
  const reconnectRef = useRef(onReconnect);
  reconnectRef.current = onReconnect;

  useEffect(() => {
    const socket = feed.socket;
    const queue: ExecutionOutputEvent[] = [];
    let frame = 0;
    let first = true;

    const flush = () => {
      frame = 0;
      let changed = false;
      for (const e of queue.splice(0)) {
        const bytes = toBytes(e.data);
        if (bytes && buffer.push(e.seq, e.stream, bytes)) changed = true;
      }
      if (changed) setVersion((v) => v + 1);
    };
    const onOutput = (e: ExecutionOutputEvent) => {
      if (e.executionId !== executionId) return;
      queue.push(e);
      if (!frame) frame = requestAnimationFrame(flush);
    };
    const subscribe = () => {
      flush(); // whatever arrived counts towards afterSeq
      socket
        .timeout(15_000)
        .emit(DashboardEvents.subscribe, { executionId, afterSeq: buffer.lastSeq }, (err: Error | null, reply?: SubscribeReply) => {
          if (err) setFeedError(new ApiError(0, 'FEED_TIMEOUT', 'The live feed did not answer; it is retried on reconnect'));
          else if (reply && !reply.ok) setFeedError(new ApiError(0, reply.error.code, reply.error.message));
          else setFeedError(null);
        });
    };
    const onConnect = () => {
      subscribe();
      if (!first) reconnectRef.current();
      first = false;
    };
    const onResubscribe = (e: { executionId: string }) => {
      if (e.executionId === executionId) subscribe();
    };

    socket.on(DashboardEvents.output, onOutput);
    socket.on(DashboardEvents.resubscribe, onResubscribe);
    socket.on('connect', onConnect);
    if (socket.connected) onConnect();
    return () => {
      socket.off(DashboardEvents.output, onOutput);
      socket.off(DashboardEvents.resubscribe, onResubscribe);
      socket.off('connect', onConnect);
      if (frame) cancelAnimationFrame(frame);
      if (socket.connected) socket.emit(DashboardEvents.unsubscribe, { executionId }, () => undefined);
    };
  }, [feed, executionId]);

  return { buffer, version, feedError };
}

/** The current time, ticking every `ms` (0: not ticking), for a running execution's elapsed time. */
function useNow(ms: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!ms) return;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
