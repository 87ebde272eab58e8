import { describe, expect, it } from '@jest/globals';
import { Parser } from '@asyncapi/parser';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { asyncApiDocument, serialiseAsyncApi } from './asyncapi.js';
import { AGENT_EVENTS, DASHBOARD_EVENTS, PROTOCOL_ERROR_CODES, PROTOCOL_VERSION } from './index.js';

const committed = join(import.meta.dirname, '../../../docs/asyncapi.json');

describe('the AsyncAPI document', () => {
  const doc = asyncApiDocument();

  it('is committed as generated (npm run docs:asyncapi)', async () => {
    expect(await readFile(committed, 'utf8')).toBe(serialiseAsyncApi(doc));
  });

  it('parses with @asyncapi/parser without errors or warnings', async () => {
    const { document, diagnostics } = await new Parser().parse(serialiseAsyncApi(doc));
    // Severity 0 is an error, 1 a warning (2 and 3 are hints, such as "a newer AsyncAPI exists").
    expect(diagnostics.filter((d) => Number(d.severity) <= 1).map((d) => `${d.code} ${d.message} at ${d.path.join('.')}`)).toEqual([]);
    expect(document).toBeDefined();
    expect(document!.channels().all().map((c) => c.address()).sort()).toEqual(['/agent', '/dashboard']);
  });

  it('has a message, and an acknowledgement where the table has one, for every event of both namespaces', () => {
    const messages = (doc.components as { messages: Record<string, { payload: unknown }> }).messages;
    const operations = doc.operations as Record<string, { action: string; reply?: unknown }>;
    for (const [ns, table] of [['agent', AGENT_EVENTS], ['dashboard', DASHBOARD_EVENTS]] as const) {
      for (const [event, spec] of Object.entries(table)) {
        expect([event, !!messages[`${ns}.${event}`]?.payload]).toEqual([event, true]);
        expect([event, !!messages[`${ns}.${event}.reply`]]).toEqual([event, spec.reply !== null]);
        expect([event, operations[`${ns}.${event}`]?.action, !!operations[`${ns}.${event}`]?.reply]).toEqual([
          event,
          spec.from === 'control-plane' ? 'send' : 'receive',
          spec.reply !== null,
        ]);
      }
    }
  });

  it('names the protocol version, the handshake auth and every error code', () => {
    expect((doc.info as { version: string }).version).toBe(String(PROTOCOL_VERSION));
    const schemas = (doc.components as { schemas: Record<string, { enum?: string[]; properties?: Record<string, unknown> }> }).schemas;
    expect(schemas.ProtocolErrorCode!.enum).toEqual([...PROTOCOL_ERROR_CODES]);
    expect(Object.keys(schemas.AgentHandshake!.properties!)).toEqual(['token', 'protocolVersion', 'agentVersion', 'hostname', 'platform', 'runsScriptsAs', 'switchesUsers', 'allowRunAs']);
    expect(JSON.stringify(doc)).toContain('"maximum":2147483647');
  });
});
