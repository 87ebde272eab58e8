import { Execution } from '../executions/execution.entity.js';
import { ExecutionOutput } from '../executions/execution-output.entity.js';
import { Script } from '../scripts/script.entity.js';
import { ScriptVersion } from '../scripts/script-version.entity.js';
import { Server } from '../servers/server.entity.js';
import { Webhook } from '../webhooks/webhook.entity.js';
import { WebhookDelivery } from '../webhooks/webhook-delivery.entity.js';
import { ApiKey } from '../workspaces/api-key.entity.js';
import { Workspace } from '../workspaces/workspace.entity.js';
import { InitialSchema1764220000000 } from './migrations/1764220000000-initial-schema.js';
import { ExecutionFinishHeldAt1764300000000 } from './migrations/1764300000000-execution-finish-held-at.js';
import { ExecutionLifecycle1764400000000 } from './migrations/1764400000000-execution-lifecycle.js';
import { RetentionAndQuota1764500000000 } from './migrations/1764500000000-retention-and-quota.js';
import { ScriptSecrets1764600000000 } from './migrations/1764600000000-script-secrets.js';
import { RealSenders1764700000000 } from './migrations/1764700000000-real-senders.js';
import { RunAs1764710000000 } from './migrations/1764710000000-run-as.js';
import { Cluster1764730000000 } from './migrations/1764730000000-cluster.js';
import { FeedTickets1764930000000 } from './migrations/1764930000000-feed-tickets.js';
import { QueuePolicy1765000000000 } from './migrations/1765000000000-queue-policy.js';
import { PassPayload1765100000000 } from './migrations/1765100000000-pass-payload.js';
import { WebhookCallTally1765200000000 } from './migrations/1765200000000-webhook-call-tally.js';
import { ScriptSecret } from '../secrets/secret.entity.js';

/** Listed as classes, not globs, so the same list works from source, the build and a bundle. */
export const ENTITIES = [Workspace, ApiKey, Server, Script, ScriptVersion, Webhook, WebhookDelivery, Execution, ExecutionOutput, ScriptSecret];
export const MIGRATIONS = [
  InitialSchema1764220000000,
  ExecutionFinishHeldAt1764300000000,
  ExecutionLifecycle1764400000000,
  RetentionAndQuota1764500000000,
  ScriptSecrets1764600000000,
  RealSenders1764700000000,
  RunAs1764710000000,
  Cluster1764730000000,
  FeedTickets1764930000000,
  QueuePolicy1765000000000,
  PassPayload1765100000000,
  WebhookCallTally1765200000000,
];
