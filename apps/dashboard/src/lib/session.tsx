import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { ServerToViewerEvents } from '@app/protocol/events.js';
import { ApiClient, ApiError } from '../api/client.js';
import type { Me } from '../api/types.js';
import type { DashboardFeed } from './feed.js';

/** The API key lives in sessionStorage: it is for this browser session (tab) only. */
const KEY = 'devpilot.apiKey';

export function storedApiKey(): string | null {
  try {
    return window.sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}
export function storeApiKey(key: string | null): void {
  try {
    if (key) window.sessionStorage.setItem(KEY, key);
    else window.sessionStorage.removeItem(KEY);
  } catch {
    /* storage disabled: the key then lasts as long as the page */
  }
}

export interface Session {
  api: ApiClient;
  me: Me;
  feed: DashboardFeed;
  isOwner: boolean;
  workspaceName: string;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in session');
  return s;
}

export function workspaceLabel(me: Me): string {
  return me.workspace.name;
}

/** Listens to one feed event while the component is mounted; the handler may change between renders. */
export function useFeedEvent<E extends keyof ServerToViewerEvents>(event: E, handler: ServerToViewerEvents[E]): void {
  const { feed } = useSession();
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => {
    const fn = ((...args: Parameters<ServerToViewerEvents[E]>) =>
      (ref.current as (...a: unknown[]) => void)(...args)) as unknown as ServerToViewerEvents[E];
    // socket.io's typed `on` cannot see through the generic event name, hence the casts.
    (feed.socket.on as (e: string, f: unknown) => void)(event, fn);
    return () => (feed.socket.off as (e: string, f: unknown) => void)(event, fn);
  }, [feed, event]);
}

export interface Resource<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
  setData: (update: (prev: T | undefined) => T | undefined) => void;
}

/** Loads `fn()` when `deps` change; keeps the last data while reloading. */
export function useResource<T>(fn: () => Promise<T>, deps: unknown[]): Resource<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    fn().then(
      (d) => {
        if (!live) return;
        setDataState(d);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        setError(toApiError(e));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
    // The caller lists what the loader depends on (as with useMemo); the loader itself is new every render.
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const setData = useCallback((u: (prev: T | undefined) => T | undefined) => setDataState(u), []);
  return { data, error, loading, reload, setData };
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, 'CLIENT_ERROR', e instanceof Error ? e.message : String(e));
}
