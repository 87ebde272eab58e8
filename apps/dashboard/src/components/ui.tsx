import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { TERMINAL_STATUSES, type ExecutionStatus } from '@app/protocol/constants.js';
import type { ApiError } from '../api/client.js';
import { toast } from './overlays.js';

export function ErrorNotice({ error, title }: { error: ApiError | null | undefined; title?: string }) {
  if (!error) return null;
  return (
    <div class="notice notice-error" role="alert" data-testid="error-notice">
      <strong>{title ?? 'Something went wrong'}:</strong> {error.message}
      {error.code && <code class="error-code">{error.code}</code>}
    </div>
  );
}

export function EmptyState({ title, children, testid }: { title: string; children?: ComponentChildren; testid?: string }) {
  return (
    <div class="empty" data-testid={testid ?? 'empty-state'}>
      <h3>{title}</h3>
      {children}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="loading" aria-busy="true">
      <span class="spinner" /> {label}
    </div>
  );
}

const STATUS_LABEL: Record<ExecutionStatus, string> = {
  queued: 'queued',
  dispatched: 'dispatched',
  running: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
  timed_out: 'timed out',
  cancelled: 'cancelled',
  lost: 'lost',
  undeliverable: 'undeliverable',
};

export function StatusBadge({ status, testid = 'status-badge' }: { status: ExecutionStatus; testid?: string }) {
  const live = !TERMINAL_STATUSES.includes(status);
  return (
    <span class={`badge status-${status}${live ? ' live' : ''}`} data-testid={testid} data-status={status}>
      {status === 'running' && <span class="pulse" />}
      {STATUS_LABEL[status] ?? status}
    </span>
  );
}

export function ServerStatusDot({ status }: { status: 'online' | 'offline' }) {
  return (
    <span class={`server-status server-${status}`} data-testid="server-status" data-status={status}>
      <span class="dot" />
      {status}
    </span>
  );
}

export function TriggerTag({ trigger, webhookName }: { trigger: string; webhookName?: string | null }) {
  return (
    <span class={`tag tag-${trigger}`} data-testid="trigger-tag" data-trigger={trigger}>
      {trigger}
      {trigger === 'webhook' && webhookName ? <span class="tag-detail">{webhookName}</span> : null}
    </span>
  );
}

export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API needs a secure context; fall back to a hidden textarea on plain http.
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

export function CopyButton({ text, label = 'Copy', testid }: { text: string; label?: string; testid?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="btn btn-small btn-ghost copy"
      data-testid={testid ?? 'copy-button'}
      onClick={() => void (async () => {
        const ok = await copyText(text);
        if (ok) {
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        } else toast('Copy failed: select the text and copy it by hand', 'error');
      })()}
    >
      {done ? 'Copied ✓' : label}
    </button>
  );
}

/** A value to copy (token, command), monospaced, with its copy button. */
export function CopyField({ value, testid, copyTestid }: { value: string; testid?: string; copyTestid?: string }) {
  return (
    <div class="copy-field">
      <code data-testid={testid}>{value}</code>
      <CopyButton text={value} testid={copyTestid} />
    </div>
  );
}

export function Field({ label, hint, children }: { label: string; hint?: ComponentChildren; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="field-label">{label}</span>
      {children}
      {hint && <span class="field-hint">{hint}</span>}
    </label>
  );
}

export function PageHeader({ title, sub, actions }: { title: ComponentChildren; sub?: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <div class="page-header">
      <div>
        <h1>{title}</h1>
        {sub && <div class="page-sub">{sub}</div>}
      </div>
      {actions && <div class="page-actions">{actions}</div>}
    </div>
  );
}
