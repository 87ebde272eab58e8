import { useEffect, useState } from 'preact/hooks';
import type { ApiClient } from '../api/client.js';
import type { ExecutionRow } from '../api/types.js';
import { useResource, useSession } from './session.js';

/** Webhook names by id, fetched once per id for rows that do not carry `webhookName`. */
const webhookNames = new Map<string, Promise<string | null>>();

function webhookName(api: ApiClient, id: string): Promise<string | null> {
  let p = webhookNames.get(id);
  if (!p) {
    p = api.getWebhook(id).then(
      (w) => w.name,
      () => null, // deleted since: the row still says "webhook"
    );
    webhookNames.set(id, p);
  }
  return p;
}

/** Names for the ids an execution row carries: scripts and servers from their lists, webhooks one by one. */
export function useNames(rows: ExecutionRow[]) {
  const { api } = useSession();
  const scripts = useResource(() => api.listScripts(), [api]);
  const servers = useResource(() => api.listServers(), [api]);
  const [hooks, setHooks] = useState<Record<string, string | null>>({});

  const missing = rows
    .filter((r) => r.webhookId && !r.webhookName && !(r.webhookId in hooks))
    .map((r) => r.webhookId!)
    .filter((id, i, a) => a.indexOf(id) === i);
  useEffect(() => {
    let live = true;
    for (const id of missing) void webhookName(api, id).then((n) => live && setHooks((h) => ({ ...h, [id]: n })));
    return () => {
      live = false;
    };
  }, [api, missing.join(',')]);

  return {
    scripts: scripts.data?.items ?? [],
    servers: servers.data?.items ?? [],
    script: (r: ExecutionRow) => r.scriptName ?? scripts.data?.items.find((s) => s.id === r.scriptId)?.name ?? r.scriptId.slice(0, 8),
    server: (r: ExecutionRow) => r.serverName ?? servers.data?.items.find((s) => s.id === r.serverId)?.name ?? r.serverId.slice(0, 8),
    webhook: (r: ExecutionRow) => r.webhookName ?? (r.webhookId ? hooks[r.webhookId] ?? undefined : undefined),
  };
}

/** One webhook's name (null while loading or when it is gone), e.g. for a filter chip. */
export function useWebhookName(id: string | undefined): string | null {
  const { api } = useSession();
  const [name, setName] = useState<{ id: string; name: string | null } | null>(null);
  useEffect(() => {
    if (!id) return;
    let live = true;
    void webhookName(api, id).then((n) => live && setName({ id, name: n }));
    return () => {
      live = false;
    };
  }, [api, id]);
  return name && name.id === id ? name.name : null;
}
