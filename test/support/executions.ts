import { type Api } from './http.js';
import { waitFor } from './processes.js';

const TERMINAL = ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'undeliverable'];

export async function createServer(api: Api, name: string): Promise<{ id: string; agentToken: string }> {
  const r = await api.post('/api/v1/servers', { name });
  if (r.status !== 201) throw new Error(`create server: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function createScript(
  api: Api,
  content: string,
  opts: { name?: string; interpreter?: string; timeoutSeconds?: number; maxOutputBytes?: number; secrets?: string[] } = {},
): Promise<{ id: string }> {
  const r = await api.post('/api/v1/scripts', { name: opts.name ?? `script-${Math.random().toString(36).slice(2, 10)}`, content, ...opts });
  if (r.status !== 201) throw new Error(`create script: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A manual run; returns the 202 body. */
export async function run(api: Api, scriptId: string, serverId: string): Promise<{ executionId: string; status: string; links: Record<string, string> }> {
  const r = await api.post(`/api/v1/scripts/${scriptId}/executions`, { serverId });
  if (r.status !== 202) throw new Error(`run: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function getExecution(api: Api, id: string): Promise<any> {
  const r = await api.get(`/api/v1/executions/${id}`);
  if (r.status !== 200) throw new Error(`get execution: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function waitForStatus(api: Api, id: string, status: string | string[], timeoutMs = 30_000): Promise<any> {
  const wanted = Array.isArray(status) ? status : [status];
  let last: any;
  try {
    return await waitFor(
      `execution ${id} to be ${wanted.join('/')}`,
      async () => {
        last = await getExecution(api, id);
        if (wanted.includes(last.status)) return last;
        if (TERMINAL.includes(last.status)) throw new Error(`it is ${last.status}`);
        return undefined;
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${String(e)}; last seen: ${JSON.stringify(last)}`, { cause: e });
  }
}

export async function waitForTerminal(api: Api, id: string, timeoutMs = 60_000): Promise<any> {
  return waitForStatus(api, id, TERMINAL, timeoutMs);
}

/** GET .../output as bytes. */
export async function getOutput(api: Api, id: string, stream?: string): Promise<{ status: number; bytes: Buffer; type: string | null }> {
  const res = await fetch(`${api.baseUrl}/api/v1/executions/${id}/output${stream ? `?stream=${stream}` : ''}`, {
    headers: { authorization: `Bearer ${api.key}` },
  });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') };
}

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Reads GET .../events until the stream ends, `stop` says so, or `timeoutMs`; returns the events.
 * Parses the text/event-stream format by hand so the test sees exactly what was sent.
 */
export async function readEvents(
  api: Api,
  id: string,
  opts: {
    lastEventId?: string;
    stop?: (e: SseEvent, all: SseEvent[]) => boolean;
    timeoutMs?: number;
    onOpen?: () => void;
    /** Called with each event as it arrives (before `stop`). */
    onEvent?: (e: SseEvent, all: SseEvent[]) => void;
  } = {},
): Promise<{ status: number; events: SseEvent[]; ended: boolean; contentType: string | null }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 30_000);
  const headers: Record<string, string> = { authorization: `Bearer ${api.key}` };
  if (opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
  const events: SseEvent[] = [];
  let ended = false;
  let res: Response;
  try {
    res = await fetch(`${api.baseUrl}/api/v1/executions/${id}/events`, { headers, signal: ac.signal });
  } catch (e) {
    clearTimeout(timer);
    throw e;
  }
  if (res.status !== 200 || !res.body) {
    clearTimeout(timer);
    await res.text().catch(() => undefined);
    return { status: res.status, events, ended: true, contentType: res.headers.get('content-type') };
  }
  opts.onOpen?.();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    const reader = res.body.getReader();
    outer: for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let idx: number;
      while ((idx = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, idx);
        buffer = buffer.slice(idx + 2);
        const e: SseEvent = { event: 'message', data: '' };
        const data: string[] = [];
        let any = false;
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          any = true;
          if (field === 'id') e.id = value;
          else if (field === 'event') e.event = value;
          else if (field === 'data') data.push(value);
        }
        if (!any) continue;
        e.data = data.join('\n');
        events.push(e);
        opts.onEvent?.(e, events);
        if (opts.stop?.(e, events)) {
          ac.abort();
          break outer;
        }
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  return { status: res.status, events, ended, contentType: res.headers.get('content-type') };
}

/** The output events' bytes, in the order received. */
export function outputOf(events: SseEvent[]): { seqs: number[]; bytes: Buffer } {
  const outs = events.filter((e) => e.event === 'output').map((e) => JSON.parse(e.data) as { seq: number; data: string });
  return { seqs: outs.map((o) => o.seq), bytes: Buffer.concat(outs.map((o) => Buffer.from(o.data, 'base64'))) };
}
