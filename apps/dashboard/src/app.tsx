import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiClient } from './api/client.js';
import type { Me } from './api/types.js';
import { OverlayHost } from './components/overlays.js';
import { Loading } from './components/ui.js';
import { DashboardFeed, type FeedState } from './lib/feed.js';
import { Link, match, navigate, useLocation } from './lib/router.js';
import {
  SessionContext,
  storeApiKey,
  storedApiKey,
  toApiError,
  useSession,
  workspaceLabel,
  type Session,
} from './lib/session.js';
import { ExecutionPage } from './views/execution-page.js';
import { ExecutionsView } from './views/executions.js';
import { ScriptView } from './views/script.js';
import { ScriptsView } from './views/scripts.js';
import { SecretsView } from './views/secrets.js';
import { ServersView } from './views/servers.js';
import { SignIn } from './views/sign-in.js';

interface Signed {
  apiKey: string;
  me: Me;
}

export function App() {
  const [signed, setSigned] = useState<Signed | null>(null);
  const [restoring, setRestoring] = useState(() => storedApiKey() !== null);
  const [notice, setNotice] = useState<string | null>(null);

  // A reload keeps the session: re-check the stored key once.
  useEffect(() => {
    const key = storedApiKey();
    if (!key) return;
    new ApiClient(key)
      .me()
      .then((me) => setSigned({ apiKey: key, me }))
      .catch((e: unknown) => {
        const err = toApiError(e);
        if (err.status === 401 || err.status === 403) storeApiKey(null);
        setNotice(err.status === 401 ? 'Your API key is no longer valid. Sign in again.' : `${err.message} (${err.code})`);
      })
      .finally(() => setRestoring(false));
  }, []);

  const signOut = (why?: string) => {
    storeApiKey(null);
    setSigned(null);
    setNotice(why ?? null);
  };

  return (
    <>
      {restoring ? (
        <div class="center-screen">
          <Loading label="Signing in…" />
        </div>
      ) : signed ? (
        <SignedIn key={signed.apiKey} {...signed} signOut={signOut} />
      ) : (
        <SignIn
          notice={notice}
          onSignedIn={(apiKey, me) => {
            storeApiKey(apiKey);
            setNotice(null);
            setSigned({ apiKey, me });
          }}
        />
      )}
      <OverlayHost />
    </>
  );
}

function SignedIn({ apiKey, me, signOut }: Signed & { signOut: (why?: string) => void }) {
  const session = useMemo<Session>(() => {
    const api = new ApiClient(apiKey);
    api.onUnauthorized = () => signOut('Your API key is no longer valid. Sign in again.');
    return {
      api,
      me,
      feed: new DashboardFeed(() => api.feedTicket()),
      isOwner: me.role === 'owner',
      workspaceName: workspaceLabel(me),
      signOut: () => signOut(),
    };
  }, [apiKey]);
  useEffect(() => () => session.feed.close(), [session]);

  return (
    <SessionContext.Provider value={session}>
      <Shell />
    </SessionContext.Provider>
  );
}

const NAV = [
  { href: '/executions', label: 'Executions', testid: 'nav-executions' },
  { href: '/scripts', label: 'Scripts', testid: 'nav-scripts' },
  { href: '/servers', label: 'Servers', testid: 'nav-servers' },
  { href: '/secrets', label: 'Secrets', testid: 'nav-secrets' },
];

function Shell() {
  const { path } = useLocation();
  const s = useSession();
  return (
    <div class="layout">
      <header class="topbar">
        <Link href="/executions" class="brand">
          <span class="brand-mark">›_</span> Devpilot
        </Link>
        <nav class="nav">
          {NAV.map((n) => (
            <Link
              key={n.href}
              href={n.href}
              data-testid={n.testid}
              class={path === n.href || path.startsWith(`${n.href}/`) ? 'active' : ''}
            >
              {n.label}
            </Link>
          ))}
        </nav>
        <div class="topbar-right">
          <FeedIndicator feed={s.feed} />
          <span class="who" data-testid="session-info">
            <span class="workspace">{s.workspaceName}</span>
            <span class={`role role-${s.me.role}`} data-testid="session-role">
              {s.me.role}
            </span>
          </span>
          <button type="button" class="btn btn-small btn-ghost" data-testid="sign-out" onClick={() => s.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main class="main">
        <Routes path={path} />
      </main>
    </div>
  );
}

function FeedIndicator({ feed }: { feed: DashboardFeed }) {
  const [state, setState] = useState<FeedState>(feed.current);
  useEffect(() => {
    const off = feed.onState(setState);
    setState(feed.current); // it may have connected between render and this effect
    return off;
  }, [feed]);
  const label = { connecting: 'connecting', live: 'live', offline: 'reconnecting…', refused: 'feed refused' }[state];
  return (
    <span class={`feed feed-${state}`} data-testid="feed-state" data-state={state} title="Live updates over /dashboard">
      <span class="dot" />
      {label}
    </span>
  );
}

function Routes({ path }: { path: string }) {
  let m: Record<string, string> | null;
  if (path === '/') return <Home />;
  if (match('/servers', path)) return <ServersView />;
  if (match('/secrets', path)) return <SecretsView />;
  if (match('/scripts', path)) return <ScriptsView />;
  if ((m = match('/scripts/:id', path))) return <ScriptView id={m.id!} tab="editor" />;
  if ((m = match('/scripts/:id/versions', path))) return <ScriptView id={m.id!} tab="versions" />;
  if ((m = match('/scripts/:id/webhooks', path))) return <ScriptView id={m.id!} tab="webhooks" />;
  if (match('/executions', path)) return <ExecutionsView />;
  if ((m = match('/executions/:id', path))) return <ExecutionPage key={m.id} id={m.id!} />;
  return (
    <div class="empty">
      <h3>Nothing here</h3>
      <p>
        There is no page at <code>{path}</code>. Go to <Link href="/executions">executions</Link>.
      </p>
    </div>
  );
}

/** `/` goes to the history, or to the servers page while there is no server yet. */
function Home() {
  const { api } = useSession();
  useEffect(() => {
    // A click elsewhere before the answer arrives wins: the late answer must not pull the user back.
    let left = false;
    const go = (to: string) => {
      if (!left) navigate(to, { replace: true });
    };
    api.listServers().then(
      (page) => go(page.items.length ? '/executions' : '/servers'),
      () => go('/executions'),
    );
    return () => {
      left = true;
    };
  }, [api]);
  return <Loading />;
}
