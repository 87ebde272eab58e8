import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

/** App-wide confirm dialog and toasts, driven from anywhere through these two functions. */
interface ConfirmRequest {
  title: string;
  body?: ComponentChildren;
  confirmLabel?: string;
  /** The button that backs out, named for what it keeps (e.g. "Keep running"). */
  cancelLabel?: string;
  danger?: boolean;
  resolve: (ok: boolean) => void;
}
interface Toast {
  id: number;
  text: string;
  kind: 'info' | 'error';
}

let showConfirm: ((r: ConfirmRequest) => void) | null = null;
let pushToast: ((t: Toast) => void) | null = null;
let toastId = 0;

export function confirmAction(opts: Omit<ConfirmRequest, 'resolve'>): Promise<boolean> {
  return new Promise((resolve) => {
    if (!showConfirm) resolve(window.confirm(opts.title));
    else showConfirm({ ...opts, resolve });
  });
}

export function toast(text: string, kind: Toast['kind'] = 'info'): void {
  pushToast?.({ id: ++toastId, text, kind });
}

export function OverlayHost() {
  const [req, setReq] = useState<ConfirmRequest | null>(null);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const okRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    showConfirm = setReq;
    pushToast = (t) => {
      setToasts((ts) => [...ts, t]);
      setTimeout(() => setToasts((ts) => ts.filter((x) => x.id !== t.id)), 3500);
    };
    return () => {
      showConfirm = null;
      pushToast = null;
    };
  }, []);

  useEffect(() => {
    if (!req) return;
    okRef.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') close(false);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [req]);

  const close = (ok: boolean) => {
    req?.resolve(ok);
    setReq(null);
  };

  return (
    <>
      {req && (
        <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && close(false)}>
          <div class="modal" role="dialog" aria-modal="true" aria-labelledby="confirm-title" data-testid="confirm-dialog">
            <h2 id="confirm-title">{req.title}</h2>
            {req.body && <div class="modal-body">{req.body}</div>}
            <div class="modal-actions">
              <button type="button" class="btn btn-ghost" data-testid="confirm-cancel" onClick={() => close(false)}>
                {req.cancelLabel ?? 'Cancel'}
              </button>
              <button
                type="button"
                ref={okRef}
                class={`btn ${req.danger ? 'btn-danger' : 'btn-primary'}`}
                data-testid="confirm-ok"
                onClick={() => close(true)}
              >
                {req.confirmLabel ?? 'Confirm'}
              </button>
            </div>
          </div>
        </div>
      )}
      <div class="toasts" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} class={`toast toast-${t.kind}`}>
            {t.text}
          </div>
        ))}
      </div>
    </>
  );
}
