import type {
  Delivery,
  Execution,
  Me,
  Page,
  RunAccepted,
  Script,
  Secret,
  ScriptVersion,
  Server,
  ServerWithToken,
  Webhook,
  WorkspaceSettings,
} from './types.js';

/** An API answer other than 2xx, in the API's own words (`{statusCode, code, message}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type Query = Record<string, string | number | undefined | null>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const b = (body ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof b.code === 'string' ? b.code : `HTTP_${res.status}`;
  const message = Array.isArray(b.message)
    ? b.message.join('; ')
    : typeof b.message === 'string'
      ? b.message
      : res.statusText || 'Request failed';
  return new ApiError(res.status, code, message);
}

/** A thin typed client over fetch; every management call carries the Bearer key. */
export class ApiClient {
  /** Called on 401, so the app can send the person back to sign-in. */
  onUnauthorized: (() => void) | null = null;

  constructor(private readonly apiKey: string) {}

  async request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    let res: Response;
    try {
      res = await fetch(withQuery(`/api/v1${path}`, query), {
        method,
        headers: {
          Authorization: `Bearer ${this.apiKey}`,
          Accept: 'application/json',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, 'NETWORK_ERROR', 'The control plane could not be reached');
    }
    if (!res.ok) {
      const err = await errorFrom(res);
      if (res.status === 401) this.onUnauthorized?.();
      throw err;
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** The stored output as produced, as a Blob (the route needs the auth header, so no plain link). */
  async outputBlob(executionId: string): Promise<Blob> {
    const res = await fetch(`/api/v1/executions/${encodeURIComponent(executionId)}/output`, {
      headers: { Authorization: `Bearer ${this.apiKey}` },
    });
    if (!res.ok) throw await errorFrom(res);
    return res.blob();
  }

  me = () => this.request<Me>('GET', '/me');
  /** A one-time ticket for the /dashboard socket (the socket's upgrade cannot carry the key in a header). */
  feedTicket = async () => (await this.request<{ ticket: string; expiresAt: string }>('POST', '/feed-tickets')).ticket;

  // 200 is the API's largest page: enough for pickers and name lookups in one call.
  listServers = () => this.request<Page<Server>>('GET', '/servers', undefined, { limit: 200 });
  createServer = (name: string) => this.request<ServerWithToken>('POST', '/servers', { name });
  renameServer = (id: string, name: string) => this.request<Server>('PATCH', `/servers/${id}`, { name });
  deleteServer = (id: string) => this.request<void>('DELETE', `/servers/${id}`);
  rotateAgentToken = (id: string) => this.request<ServerWithToken>('POST', `/servers/${id}/agent-token`);

  listScripts = () => this.request<Page<Script>>('GET', '/scripts', undefined, { limit: 200 });
  getScript = (id: string) => this.request<Script>('GET', `/scripts/${id}`);
  createScript = (body: Partial<Script> & { name: string; content: string }) =>
    this.request<Script>('POST', '/scripts', body);
  updateScript = (id: string, body: Partial<Script>) => this.request<Script>('PATCH', `/scripts/${id}`, body);
  deleteScript = (id: string) => this.request<void>('DELETE', `/scripts/${id}`);
  /** A page of versions, newest first; `cursor` is the previous page's nextCursor. */
  listVersions = (id: string, cursor?: string | null, limit = 50) =>
    this.request<Page<ScriptVersion>>('GET', `/scripts/${id}/versions`, undefined, { limit, cursor });
  getVersion = (id: string, version: number) =>
    this.request<ScriptVersion>('GET', `/scripts/${id}/versions/${version}`);
  runScript = (id: string, serverId: string) =>
    this.request<RunAccepted>('POST', `/scripts/${id}/executions`, { serverId });

  listWebhooks = (scriptId: string) => this.request<Page<Webhook>>('GET', `/scripts/${scriptId}/webhooks`);
  getWebhook = (id: string) => this.request<Webhook>('GET', `/webhooks/${id}`);
  createWebhook = (
    scriptId: string,
    body: {
      name: string;
      serverId: string;
      allowedIps?: string[];
      hmacSecret?: string;
      signatureScheme?: Webhook['signatureScheme'];
      concurrency?: Webhook['concurrency'];
      cooldownSeconds?: number;
      passPayload?: boolean;
    },
  ) => this.request<Webhook>('POST', `/scripts/${scriptId}/webhooks`, body);
  updateWebhook = (
    id: string,
    body: { name?: string; active?: boolean; allowedIps?: string[]; concurrency?: Webhook['concurrency']; cooldownSeconds?: number; passPayload?: boolean },
  ) =>
    this.request<Webhook>('PATCH', `/webhooks/${id}`, body);
  deleteWebhook = (id: string) => this.request<void>('DELETE', `/webhooks/${id}`);
  listDeliveries = (id: string) => this.request<Page<Delivery>>('GET', `/webhooks/${id}/deliveries`);

  listExecutions = (query: Query) => this.request<Page<Execution>>('GET', '/executions', undefined, query);
  getExecution = (id: string) => this.request<Execution>('GET', `/executions/${id}`);
  cancelExecution = (id: string) => this.request<Execution>('POST', `/executions/${id}/cancel`);

  listSecrets = () => this.request<Page<Secret>>('GET', '/secrets', undefined, { limit: 200 });
  createSecret = (body: { name: string; value: string; serverId?: string }) => this.request<Secret>('POST', '/secrets', body);
  replaceSecret = (id: string, value: string) => this.request<Secret>('PUT', `/secrets/${id}`, { value });
  deleteSecret = (id: string) => this.request<void>('DELETE', `/secrets/${id}`);

  getWorkspace = () => this.request<WorkspaceSettings>('GET', '/workspaces/current');
}
