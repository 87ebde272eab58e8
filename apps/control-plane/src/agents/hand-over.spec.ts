import { afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { StartExecution } from '@app/protocol';
import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { Subject } from 'rxjs';
import type { Namespace } from 'socket.io';
import { SecretsService } from '../common/secrets.service.js';
import type { AppConfig } from '../config/app-config.js';
import { ClusterNews } from '../executions/cluster-news.js';
import { ExecutionEvents } from '../executions/execution-events.js';
import type { CreatedRow, ExecutionRepository, NewExecution } from '../executions/execution.repository.js';
import { ExecutionsService } from '../executions/executions.service.js';
import { StartCommands } from '../executions/start-commands.js';
import { type ClaimedExecution, PAYLOAD_PURPOSE } from '../executions/run-commands.js';
import { SCRIPT_SECRET_PURPOSE, ScriptSecretsService } from '../secrets/secrets.service.js';
import type { ApiKeyEvents } from '../workspaces/api-key-events.js';
import type { KeyConnections } from '../workspaces/key-connections.js';
import type { AgentLink } from './agent-link.js';
import type { AgentPresence } from './agent-presence.js';
import { Dispatcher } from './dispatcher.js';

const SERVER = '0b7a3c1e-2f4d-4e8a-9c61-5d2e7f8a9b10';
const WS = '9c610b7a-3c1e-4f4d-8e8a-5d2e7f8a9b10';
const RUN = '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e01';

const tick = () => new Promise((r) => setImmediate(r));

/** A namespace of a three-node cluster that records what this node sends the others. */
function clusterNamespace() {
  const sent: { event: string; args: unknown[] }[] = [];
  const handlers = new Map<string, (...args: unknown[]) => void>();
  const nsp = {
    adapter: { serverCount: () => Promise.resolve(3) },
    on: (event: string, fn: (...args: unknown[]) => void) => handlers.set(event, fn),
    serverSideEmit: (event: string, ...args: unknown[]) => {
      sent.push({ event, args });
      // A hand-over is answered by the other two nodes: neither holds the agent here.
      const ack = args.at(-1);
      if (typeof ack === 'function') setImmediate(() => (ack as (err: null, answers: unknown[]) => void)(null, [false, false]));
    },
  };
  return { nsp: nsp as unknown as Namespace, sent, handlers };
}

function news() {
  const events = new ExecutionEvents();
  const n = new ClusterNews(events, { revoked: new Subject() } as unknown as ApiKeyEvents, {} as KeyConnections);
  n.onModuleInit();
  return { events, news: n };
}

function createdRow(): CreatedRow {
  return {
    id: RUN,
    workspace_id: WS,
    server_id: SERVER,
    script_id: '5d2e7f8a-9b10-4e8a-9c61-0b7a3c1e2f4d',
    script_version: 1,
    webhook_id: null,
    webhook_name: null,
    trigger: 'manual',
    interpreter: 'bash',
    timeout_seconds: 60,
    max_output_bytes: '1048576',
    content: 'true\n',
    secrets: ['DEPLOY_KEY'],
    run_as: null,
    agent_knows_run_as: true,
    has_payload: false,
    agent_knows_payload: true,
    status: 'dispatched',
    queued_at: new Date(),
    deliver_by: new Date(Date.now() + 600_000),
  };
}

function dispatcher(parts: { events: ExecutionEvents; news: ClusterNews; repo: Partial<ExecutionRepository>; commands: Partial<StartCommands>; link: Partial<AgentLink> }) {
  const d = new Dispatcher(
    { sweepIntervalMs: 600_000 } as AppConfig,
    parts.events,
    parts.repo as ExecutionRepository,
    parts.commands as StartCommands,
    parts.link as AgentLink,
    {} as AgentPresence,
    parts.news,
  );
  d.onApplicationBootstrap();
  return d;
}

beforeAll(() => Logger.overrideLogger(false));

const started: Dispatcher[] = [];
afterEach(() => {
  for (const d of started.splice(0)) d.onApplicationShutdown();
});

describe('a run accepted on a node that does not hold its agent', () => {
  it('is handed over by id at once: its start (secrets, payload) is not built there, and it is requeued when no node holds the agent', async () => {
    const { events, news: n } = news();
    const { nsp, sent } = clusterNamespace();
    n.attach(nsp);
    const build = jest.fn(async (): Promise<ClaimedExecution[]> => []);
    const requeue = jest.fn<(id: string) => Promise<void>>(async () => undefined);
    const repo = { create: async () => createdRow(), requeue } as unknown as ExecutionRepository;
    const link = { hasLocalReadyAgent: () => false, hasLocalAgent: () => false } as unknown as AgentLink;
    started.push(dispatcher({ events, news: n, repo, commands: { build }, link }));
    const service = new ExecutionsService({} as AppConfig, repo, events, link, { build } as unknown as StartCommands);

    const created: { start: StartExecution | null }[] = [];
    events.created.subscribe((e) => created.push(e));
    await service.create({ trigger: 'manual', workspaceId: WS, scriptId: createdRow().script_id, serverId: SERVER } as NewExecution, SERVER);

    expect(build).not.toHaveBeenCalled();
    expect(created.map((e) => e.start)).toEqual([null]);
    await tick();
    expect(sent[0]).toMatchObject({ event: 'devpilot:dispatch', args: [SERVER, [RUN], expect.any(Function)] });
    await tick();
    // Both other nodes said no: nobody holds the agent.
    expect(requeue).toHaveBeenCalledWith(RUN);
  });

  it('its hand-over is sent before the status news of the same moment (which would otherwise go first and delay it)', async () => {
    const { events, news: n } = news();
    const { nsp, sent } = clusterNamespace();
    n.attach(nsp);
    events.status.next({ executionId: RUN, workspaceId: WS, serverId: SERVER, status: 'dispatched', exitCode: null });
    const answered = n.handOver(SERVER, [RUN]);
    await tick();
    await tick();
    expect(sent.map((s) => s.event)).toEqual(['devpilot:dispatch', 'devpilot:status-changed']);
    await expect(answered).resolves.toBe('nobody');
  });
});

describe('the node holding the agent, handed a run', () => {
  it('sends the start before it answers the hand-over (its answer, a NOTIFY, does not compete with the take)', async () => {
    const { events, news: n } = news();
    const { nsp, handlers } = clusterNamespace();
    n.attach(nsp);
    const order: string[] = [];
    let take!: (rows: CreatedRow[]) => void;
    const takeHandedOver = jest.fn<(serverId: string, ids: string[]) => Promise<CreatedRow[]>>(() => new Promise((resolve) => (take = resolve)));
    const repo = { takeHandedOver, markStarted: async () => null } as unknown as ExecutionRepository;
    const commands = { build: async (rows: CreatedRow[]) => rows.map((r) => ({ id: r.id, workspaceId: r.workspace_id, serverId: r.server_id, start: { executionId: r.id } as StartExecution })) };
    const link = {
      hasLocalAgent: () => true,
      hasLocalReadyAgent: () => true,
      start: async (_serverId: string, cmd: StartExecution) => {
        order.push(`start ${cmd.executionId}`);
        return { kind: 'accepted' as const };
      },
    } as unknown as AgentLink;
    started.push(dispatcher({ events, news: n, repo, commands, link }));

    handlers.get('devpilot:dispatch')!(SERVER, [RUN], (held: boolean) => order.push(`answered ${held}`));
    await tick();
    expect(takeHandedOver).toHaveBeenCalledWith(SERVER, [RUN]);
    expect(order).toEqual([]);
    take([createdRow()]);
    await tick();
    expect(order).toEqual([`start ${RUN}`, 'answered true']);
  });

  it('builds the start from what the take read (sealed secrets and request): no further statement on its path', async () => {
    const sealer = new SecretsService({ masterKey: randomBytes(32) } as AppConfig);
    const queries = jest.fn<(sql: string) => Promise<unknown>>(async () => []);
    const db = { query: queries, driver: { master: { query: queries } } };
    const secrets = new ScriptSecretsService(db as never, {} as never, sealer);
    const payloads = jest.fn<(ids: string[]) => Promise<[]>>(async () => []);
    const repo = { payloads } as unknown as ExecutionRepository;
    const commands = new StartCommands(secrets, repo, sealer);
    const seal = (v: string) => sealer.seal(v, SCRIPT_SECRET_PURPOSE).toString('base64');
    const [built] = await commands.build([
      {
        ...createdRow(),
        has_payload: true,
        // The workspace's value first, then the server's over it (the order the take returns).
        sealed_secrets: [
          { name: 'DEPLOY_KEY', value: seal('workspace value') },
          { name: 'DEPLOY_KEY', value: seal('server value') },
        ],
        sealed_payload: { body: sealer.sealBytes(Buffer.from('{"ref":"main"}'), PAYLOAD_PURPOSE).toString('base64'), event: 'push', deliveryId: 'd-1', contentType: 'application/json' },
      },
    ]);
    expect(queries.mock.calls).toEqual([]);
    // Asked for no run's request (the repository answers an empty list without a statement).
    expect(payloads.mock.calls.flatMap(([ids]) => ids)).toEqual([]);
    expect(built!.start.env.DEPLOY_KEY).toBe('server value');
    expect(built!.start.maskEnv).toEqual(['DEPLOY_KEY']);
    expect(built!.start.payload).toEqual({ body: Buffer.from('{"ref":"main"}'), event: 'push', deliveryId: 'd-1', contentType: 'application/json' });
  });

  it('answers at once that it holds the agent when it is handed the queue (no ids)', async () => {
    const { events, news: n } = news();
    const { nsp, handlers } = clusterNamespace();
    n.attach(nsp);
    const repo = { claimQueued: () => new Promise(() => undefined) } as unknown as ExecutionRepository;
    const link = { hasLocalAgent: () => true, hasLocalReadyAgent: () => true } as unknown as AgentLink;
    started.push(dispatcher({ events, news: n, repo, commands: {}, link }));
    const answer = jest.fn();
    handlers.get('devpilot:dispatch')!(SERVER, [], answer);
    await tick();
    expect(answer).toHaveBeenCalledWith(true);
  });
});
