import { useState } from 'preact/hooks';
import { ApiClient, ApiError } from '../api/client.js';
import type { Me } from '../api/types.js';
import { ErrorNotice } from '../components/ui.js';
import { toApiError } from '../lib/session.js';

export function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: (apiKey: string, me: Me) => void }) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const apiKey = key.trim();
    if (!apiKey) return;
    setBusy(true);
    setError(null);
    try {
      onSignedIn(apiKey, await new ApiClient(apiKey).me());
    } catch (err) {
      const ae = toApiError(err);
      setError(ae.status === 401 ? new ApiError(401, ae.code, 'That API key was not accepted') : ae);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="center-screen signin-screen">
      <form class="card signin" onSubmit={(e) => void submit(e)} data-testid="signin-form">
        <div class="brand brand-large">
          <span class="brand-mark">›_</span> Devpilot
        </div>
        <p class="muted">Turn saved scripts on your servers into webhooks, and watch them run.</p>
        {notice && <div class="notice notice-info">{notice}</div>}
        <ErrorNotice error={error} title="Could not sign in" />
        <label class="field">
          <span class="field-label">API key</span>
          <input
            type="password"
            autoComplete="off"
            spellcheck={false}
            autoFocus
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            placeholder="Paste your API key"
            data-testid="signin-api-key"
          />
          <span class="field-hint">
            Kept for this browser session only. On a fresh install the admin key is in <code>data/admin-api-key</code>.
          </span>
        </label>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy || !key.trim()} data-testid="signin-submit">
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
