import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import {
  AGENT_EVENTS,
  AgentEvents,
  type AgentToServerEvents,
  AgentHello,
  DASHBOARD_EVENTS,
  DashboardEvents,
  ErrorReply,
  type EventSpec,
  ExecutionFinished,
  HelloReply,
  MAX_SEQ,
  OutputAck,
  OutputBatch,
  PROTOCOL_ERROR_CODES,
  PROTOCOL_VERSION,
  protocolError,
  type ServerToAgentEvents,
  type ServerToViewerEvents,
  SubscribeExecution,
  SUPPORTED_PROTOCOL_VERSIONS,
  VIEWER_TEXT_OUTPUT_SINCE,
  ViewerHandshake,
  type ViewerToServerEvents,
} from './index.js';

const id = '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11';
const tables: [string, Record<string, EventSpec>][] = [
  ['/agent', AGENT_EVENTS],
  ['/dashboard', DASHBOARD_EVENTS],
];

// Compile-time: the socket.io event maps are exactly the table's events, split by sender.
type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const derived: [
  Equal<keyof AgentToServerEvents, 'agent.hello' | 'execution.spawned' | 'execution.output' | 'execution.finished'>,
  Equal<keyof ServerToAgentEvents, 'execution.start' | 'execution.cancel'>,
  Equal<keyof ViewerToServerEvents, 'execution.subscribe' | 'execution.unsubscribe'>,
  Equal<keyof ServerToViewerEvents, 'execution.output' | 'execution.status' | 'execution.created' | 'server.status' | 'execution.resubscribe'>,
] = [true, true, true, true];

describe('the event tables', () => {
  it('derive the socket.io event maps', () => {
    expect(derived).toEqual([true, true, true, true]);
  });

  it.each(tables)('%s: every event has a request schema and a reply schema (only pushes to viewers go without an ack)', (_ns, table) => {
    for (const [event, spec] of Object.entries(table)) {
      expect([event, spec.request instanceof z.ZodType]).toEqual([event, true]);
      if (spec.reply === null) expect([event, spec.from]).toEqual([event, 'control-plane']);
      else expect([event, spec.reply instanceof z.ZodType]).toEqual([event, true]);
      expect(spec.since).toBeGreaterThanOrEqual(1);
      expect(spec.since).toBeLessThanOrEqual(PROTOCOL_VERSION);
      expect(spec.summary.length).toBeGreaterThan(10);
    }
  });

  it('name every event in AgentEvents and DashboardEvents, and nothing else', () => {
    expect(Object.values(AgentEvents).sort()).toEqual(Object.keys(AGENT_EVENTS).sort());
    expect(Object.values(DashboardEvents).sort()).toEqual(Object.keys(DASHBOARD_EVENTS).sort());
  });

  it('/agent: every command and report is acknowledged, and every ack may be a refusal with a code', () => {
    for (const [event, spec] of Object.entries(AGENT_EVENTS)) {
      for (const code of PROTOCOL_ERROR_CODES) expect([event, spec.reply.safeParse(protocolError(code, 'no')).success]).toEqual([event, true]);
      expect([event, spec.reply.safeParse({ error: { code: 'SOMETHING_ELSE', message: 'no' } }).success]).toEqual([event, false]);
    }
  });

  it('protocol 2 adds execution.spawned, 3 the upgrade credential, 4 base64 output for viewers; the control plane accepts 1 to 4', () => {
    expect(PROTOCOL_VERSION).toBe(4);
    expect(SUPPORTED_PROTOCOL_VERSIONS).toEqual([1, 2, 3, 4]);
    expect(VIEWER_TEXT_OUTPUT_SINCE).toBe(4);
    const output = DASHBOARD_EVENTS['execution.output'].request;
    const event = { executionId: id, seq: 0, stream: 'stdout' };
    expect(output.safeParse({ ...event, data: Buffer.from([0, 255, 10]).toString('base64') }).success).toBe(true);
    expect(output.safeParse({ ...event, data: Buffer.from([0, 255, 10]) }).success).toBe(true);
    expect(output.safeParse({ ...event, data: 'not base64!' }).success).toBe(false);
    expect(ViewerHandshake.safeParse({}).success).toBe(true);
    expect(ViewerHandshake.safeParse({ protocolVersion: 4 }).success).toBe(true);
    expect(ViewerHandshake.safeParse({ protocolVersion: '4' }).success).toBe(false);
    expect(AGENT_EVENTS['execution.spawned'].since).toBe(2);
    expect(AGENT_EVENTS['execution.spawned'].request.safeParse({ executionId: id }).success).toBe(true);
    expect(AGENT_EVENTS['execution.spawned'].reply.safeParse({ ok: true }).success).toBe(true);
    expect(AGENT_EVENTS['execution.spawned'].reply.safeParse({ ok: false }).success).toBe(false);
  });
});

describe('seq bounds: 0..2147483647, what a PostgreSQL integer stores', () => {
  const cases: [string, z.ZodType, (n: number) => unknown, number][] = [
    ['chunks.seq', OutputBatch, (n) => ({ executionId: id, chunks: [{ seq: n, stream: 'stdout', data: Buffer.from('x') }] }), 0],
    [
      'lastSeq',
      ExecutionFinished,
      (n) => ({ executionId: id, exitCode: 0, signal: null, timedOut: false, cancelled: false, lastSeq: n, outputBytes: 0, truncated: false }),
      -1,
    ],
    ['running.nextSeq', AgentHello, (n) => ({ running: [{ executionId: id, nextSeq: n }], finished: [] }), 0],
    ['resend.fromSeq', HelloReply, (n) => ({ resend: [{ executionId: id, fromSeq: n }] }), 0],
    ['ackedSeq', OutputAck, (n) => ({ ackedSeq: n }), 0],
    ['afterSeq', SubscribeExecution, (n) => ({ executionId: id, afterSeq: n }), -1],
  ];

  it.each(cases)('%s', (_field, schema, build, min) => {
    expect(MAX_SEQ).toBe(2 ** 31 - 1);
    for (const ok of [min, 0, 1, MAX_SEQ]) expect([ok, schema.safeParse(build(ok)).success]).toEqual([ok, true]);
    for (const bad of [min - 1, MAX_SEQ + 1, 2 ** 31, Number.MAX_SAFE_INTEGER, 0.5, Number.NaN, Infinity]) {
      expect([bad, schema.safeParse(build(bad)).success]).toEqual([bad, false]);
    }
  });
});

describe('ErrorReply', () => {
  it('carries a code from the enum and a bounded message', () => {
    expect(ErrorReply.safeParse(protocolError('UNKNOWN_EXECUTION', 'x')).success).toBe(true);
    expect(protocolError('INVALID_PAYLOAD', 'y'.repeat(5000)).error.message).toHaveLength(2000);
    expect(ErrorReply.safeParse({ error: { code: 'unknown_execution', message: 'x' } }).success).toBe(false);
  });
});
