import { z } from 'zod';
import { AGENT_IO_PATH, AGENT_NAMESPACE, DASHBOARD_IO_PATH, DASHBOARD_NAMESPACE, MAX_CHUNK_BYTES, MAX_HELLO_ITEMS, MAX_JSON_DEPTH, MAX_VIEWER_MESSAGE_BYTES, MAX_CHUNKS_PER_BATCH, MAX_MESSAGE_BYTES, MAX_SEQ, PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, VIEWER_TEXT_OUTPUT_MAX_BYTES, VIEWER_TEXT_OUTPUT_SINCE } from './constants.js';
import { ConnectRefusal, ErrorReply, PROTOCOL_ERRORS, ProtocolErrorCode } from './errors.js';
import { AGENT_EVENTS, DASHBOARD_EVENTS, type EventSpec } from './event-table.js';
import { AgentHandshake, ViewerHandshake } from './messages.js';

type Json = Record<string, unknown>;

interface Namespace {
  /** The channel's key in the document. */
  key: 'agent' | 'dashboard';
  address: string;
  /** Who talks to the control plane on it. */
  peer: 'agent' | 'viewer';
  /** The key of its engine in `servers`. */
  server: 'agents' | 'viewers';
  security: string[];
  handshake: z.ZodType;
  table: Record<string, EventSpec>;
  description: string;
}

const NAMESPACES: Namespace[] = [
  {
    key: 'agent',
    address: AGENT_NAMESPACE,
    peer: 'agent',
    server: 'agents',
    security: ['agentToken'],
    handshake: AgentHandshake,
    table: AGENT_EVENTS,
    description: [
      'The agent installed on each server connects out to this namespace and keeps the connection. One live connection per server: a newer one replaces the older.',
      'After every (re)connect the agent sends `agent.hello` first; the control plane sends no work before answering it.',
      'Lossless output: `seq` starts at 0 per execution and has no gaps; the agent keeps every chunk until an `execution.output` ack covers it and resends what is unacked after a reconnect (from the `fromSeq` the hello reply names); the control plane stores `(execution, seq)` idempotently and makes a run terminal from `execution.finished` only when it holds every chunk up to `lastSeq`.',
      'Reports are also kept until acknowledged and resent after a reconnect: `execution.spawned` (protocol 2) and `execution.finished` (also listed in the hello).',
    ].join('\n\n'),
  },
  {
    key: 'dashboard',
    address: DASHBOARD_NAMESPACE,
    peer: 'viewer',
    server: 'viewers',
    security: ['viewerApiKey', 'feedTicket'],
    handshake: ViewerHandshake,
    table: DASHBOARD_EVENTS,
    description: [
      'The live feed for viewers (the dashboard, or a third-party viewer). A viewer sees only its own workspace.',
      '`execution.status`, `execution.created` and `server.status` of the workspace come to every viewer; `execution.output` only for the executions it subscribed to, in seq order, with no gap and no duplicate (a viewer also drops any seq it already holds).',
    ].join('\n\n'),
  },
];

/** Named schemas shared by several messages; everything else is inlined. */
const SHARED: Record<string, z.ZodType> = { ErrorReply, ProtocolErrorCode, ConnectRefusal, AgentHandshake, ViewerHandshake };

/**
 * The AsyncAPI 3.0 document of `/agent` and `/dashboard`, generated from the event tables, from the
 * point of view of the control plane (it receives what agents and viewers send, and sends the rest).
 * `npm run docs:asyncapi` writes it to docs/asyncapi.json; the control plane serves it at
 * /api/docs/asyncapi.json.
 */
export function asyncApiDocument(): Json {
  const schemas: Json = {};
  const messages: Json = {};
  const channels: Json = {};
  const operations: Json = {};

  for (const schema of Object.values(SHARED)) convert(schema, schemas);
  // The codes with what each means, where a reader of the schema looks.
  schemas.ProtocolErrorCode = {
    type: 'string',
    enum: Object.keys(PROTOCOL_ERRORS),
    description: ['A stable refusal code; act on it, never on the message.', ...Object.entries(PROTOCOL_ERRORS).map(([code, what]) => `- \`${code}\`: ${what}`)].join('\n'),
  };

  for (const ns of NAMESPACES) {
    const channelMessages: Json = {};
    for (const [event, spec] of Object.entries(ns.table)) {
      const id = `${ns.key}.${event}`;
      const fromPeer = spec.from !== 'control-plane';
      messages[id] = {
        name: event,
        title: event,
        summary: spec.summary,
        contentType: 'application/json',
        payload: convert(spec.request, schemas),
        'x-sender': spec.from,
        'x-since-protocol-version': spec.since,
      };
      channelMessages[event] = { $ref: `#/components/messages/${id}` };
      const operation: Json = {
        action: fromPeer ? 'receive' : 'send',
        channel: { $ref: `#/channels/${ns.key}` },
        summary: `${fromPeer ? `${capitalise(ns.peer)} -> control plane` : `Control plane -> ${ns.peer}`}: ${event}`,
        description: spec.summary,
        security: ns.security.map((s) => ({ $ref: `#/components/securitySchemes/${s}` })),
        messages: [{ $ref: `#/channels/${ns.key}/messages/${event}` }],
      };
      if (spec.reply) {
        messages[`${id}.reply`] = {
          name: `${event} ack`,
          title: `${event} acknowledgement`,
          summary: `The socket.io acknowledgement of \`${event}\`, sent by the ${fromPeer ? 'control plane' : ns.peer}.`,
          contentType: 'application/json',
          payload: convert(spec.reply, schemas),
          'x-since-protocol-version': spec.since,
        };
        channelMessages[`${event}.reply`] = { $ref: `#/components/messages/${id}.reply` };
        operation.reply = {
          channel: { $ref: `#/channels/${ns.key}` },
          messages: [{ $ref: `#/channels/${ns.key}/messages/${event}.reply` }],
        };
      }
      operations[id] = operation;
    }
    channels[ns.key] = {
      address: ns.address,
      title: `socket.io namespace ${ns.address}`,
      description: ns.description,
      messages: channelMessages,
      servers: [{ $ref: `#/servers/${ns.server}` }],
      'x-handshake-auth': convert(ns.handshake, schemas),
    };
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Devpilot agent and viewer protocols',
      version: String(PROTOCOL_VERSION),
      description: INFO,
      license: { name: 'MIT' },
    },
    defaultContentType: 'application/json',
    servers: {
      agents: {
        host: 'localhost:3000',
        protocol: 'ws',
        pathname: AGENT_IO_PATH.replace(/\/$/, ''),
        description: `The control plane (its DEVPILOT_PUBLIC_URL; \`wss\` behind TLS), engine path \`${AGENT_IO_PATH}\`: socket.io 4 over WebSocket only; the channel address is the socket.io namespace. Messages up to ${MAX_MESSAGE_BYTES} bytes.`,
        security: [{ $ref: '#/components/securitySchemes/agentToken' }],
      },
      viewers: {
        host: 'localhost:3000',
        protocol: 'ws',
        pathname: DASHBOARD_IO_PATH.replace(/\/$/, ''),
        description: `The same control plane, engine path \`${DASHBOARD_IO_PATH}\` (apart from the agents' because the largest message is per engine): viewers send messages of at most ${MAX_VIEWER_MESSAGE_BYTES} bytes. WebSocket (long-polling also accepted).`,
        security: [{ $ref: '#/components/securitySchemes/viewerApiKey' }, { $ref: '#/components/securitySchemes/feedTicket' }],
      },
    },
    channels,
    operations,
    components: {
      schemas,
      messages,
      securitySchemes: {
        agentToken: {
          type: 'http',
          scheme: 'bearer',
          description:
            'The server’s agent token as `Authorization: Bearer <agent token>` on the WebSocket upgrade request (protocol 3), checked before any packet is read: a missing or wrong token gets HTTP 400 with a message, and no connection. Protocol 1 and 2 agents sent it only in `auth.token`; they must be upgraded (a token in `auth` is still accepted when it is the same as the header’s).',
        },
        viewerApiKey: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key of the workspace (owner or viewer) as `Authorization: Bearer <api key>` on the upgrade request: for viewers that can set headers (not browsers).',
        },
        feedTicket: {
          type: 'httpApiKey',
          in: 'query',
          name: 'ticket',
          description:
            'A one-time ticket from `POST /api/v1/feed-tickets` (with the API key, over HTTPS), valid 45 seconds and for one connection: what a browser puts in the upgrade URL instead of its API key. A browser page (one that sends `Origin`) must come from DEVPILOT_PUBLIC_URL, the request’s own host or DEVPILOT_ALLOWED_ORIGINS.',
        },
      },
    },
  };
}

const INFO = [
  'How an agent (`/agent`) and a viewer (`/dashboard`) talk to the Devpilot control plane, enough to write either without reading the source.',
  '',
  '**Transport.** socket.io 4 over WebSocket only. Each event is one socket.io event whose single argument is the payload; when the event has a reply, the sender passes an acknowledgement callback and the reply is its single argument. Binary fields (`data`) are socket.io binary attachments, except the `data` of `execution.output` to a viewer of protocol 4 or later: base64 text for a chunk of up to ' + VIEWER_TEXT_OUTPUT_MAX_BYTES + ' bytes (a larger one stays binary). Every payload is validated on the receiving side: a malformed one gets a refusal, never a crash. Messages larger than ' +
    `${MAX_MESSAGE_BYTES} bytes (on \`/dashboard\`: ${MAX_VIEWER_MESSAGE_BYTES}) close the connection, as does JSON nested deeper than ${MAX_JSON_DEPTH} levels; a hello lists at most ${MAX_HELLO_ITEMS} executions as running and as many as finished; an output chunk holds at most ${MAX_CHUNK_BYTES} bytes, a batch at most ${MAX_CHUNKS_PER_BATCH} chunks; every seq is an integer from 0 to ${MAX_SEQ}.`,
  '',
  '**Handshake.** The credential comes on the WebSocket upgrade request and is checked before any packet is read (see the servers’ security): `Authorization: Bearer <agent token>` for `/agent` (engine path `/socket.io/`); for `/dashboard` (engine path `/dashboard-io/`) `Authorization: Bearer <api key>` or `?ticket=<one-time ticket>`. Refused there, the upgrade is answered HTTP 400 with a message and no connection opens. Then the socket.io `auth` object: `{protocolVersion, agentVersion, hostname, platform, runsScriptsAs?, switchesUsers?, allowRunAs?}` on `/agent` (who runs its scripts, shown on the server page), `{protocolVersion?}` on `/dashboard` (channel field `x-handshake-auth`; a version the control plane does not support is refused). A refused connection gets a `connect_error` whose `message` is for a person and whose `data` is `ConnectRefusal` `{code, supportedVersions?}`: `UNAUTHORIZED` and `UNSUPPORTED_PROTOCOL_VERSION` are final (retrying cannot help), the others are worth a retry with backoff.',
  '',
  '**Refusals.** A refused message is acknowledged with `ErrorReply` `{error: {code, message}}` (on `/dashboard`: `{ok: false, error}`); the codes are listed in `ProtocolErrorCode`.',
  '',
  `**Protocol versions.** This document describes version ${PROTOCOL_VERSION}; the control plane accepts ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')} in \`auth.protocolVersion\`, but every client must send the upgrade credential of version 3. ` +
    `Version 4: an agent writes a start's \`payload\` to the script's request file (a run that is to get one is never sent to an agent of an earlier version: it fails before it starts); a viewer that sends \`auth.protocolVersion\` ${VIEWER_TEXT_OUTPUT_SINCE} or later gets \`execution.output\`'s \`data\` as base64 text (chunks up to ${VIEWER_TEXT_OUTPUT_MAX_BYTES} bytes; a larger chunk stays a binary attachment, whose second frame costs nothing beside it), so each message is one text WebSocket frame (a binary attachment is a frame of its own) and a broadcast is encoded once for all its viewers; a viewer that sends no version, or an earlier one, gets binary as before. ` +
    'Version 3 moved the agent token to the upgrade’s `Authorization` header. Version 2 added `execution.spawned`: an agent acknowledges `execution.start` when it accepts the run (runs beyond its concurrency wait in its queue) and reports `execution.spawned` once the process exists; the execution is `dispatched` until then and `running` (with its start time) from then on. A version 1 agent never sends it. Each message names the version that introduced it (`x-since-protocol-version`).',
].join('\n');

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * JSON Schema (draft-07, as AsyncAPI's schema format) of what is sent on the wire. Named schemas go
 * to `schemas` and are referenced from `#/components/schemas`.
 */
function convert(schema: z.ZodType, schemas: Json): Json {
  const root = z.toJSONSchema(schema, { target: 'draft-07', io: 'input', unrepresentable: 'any' }) as Json & { definitions?: Json };
  for (const [name, def] of Object.entries(root.definitions ?? {})) schemas[name] ??= tidy(def);
  delete root.definitions;
  delete root.$schema;
  return tidy(root) as Json;
}

/** References pointed at the components, and the binary fields shown as such. */
function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$ref' && typeof v === 'string') out[k] = v.replace('#/definitions/', '#/components/schemas/');
    else out[k] = tidy(v);
  }
  // Bytes: an instanceof check z.toJSONSchema cannot express; its metadata says what it is.
  if (out.format === 'binary') delete out.anyOf;
  return out;
}

/** The document as committed in docs/asyncapi.json. */
export function serialiseAsyncApi(doc: Json): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}
