import type { ExecutionFinished, ExecutionStatus, Interpreter, RunPayload, StartExecution, Trigger } from '@app/protocol';

/** What a webhook call's request is sealed for while its run waits (see SecretsService). */
export const PAYLOAD_PURPOSE = 'execution-payload';

/** An execution row with what its start command needs (script settings and the version's content). */
export interface ClaimRow {
  id: string;
  workspace_id: string;
  server_id: string;
  script_id: string;
  script_version: number;
  webhook_id: string | null;
  /** The webhook's name when the run is a webhook's (null if it was deleted since). */
  webhook_name: string | null;
  trigger: Trigger;
  interpreter: Interpreter;
  timeout_seconds: number;
  max_output_bytes: string;
  content: string;
  /** The secrets its script version declares. */
  secrets: string[];
  /** The user its script version asks to run as. */
  run_as: string | null;
  /**
   * Its server's last agent said who runs its scripts: it knows `runAs`. An older agent would
   * drop the field and run the script as its default user.
   */
  agent_knows_run_as: boolean;
  /** Its webhook's request is kept for it (the webhook passes it to the script). */
  has_payload: boolean;
  /** Its server's last agent writes a start's payload to the script's request file (protocol 4 or later). */
  agent_knows_payload: boolean;
  /**
   * Read with a claim (ExecutionRepository.withStart), so the start is built without another
   * statement: the values of its declared secrets that exist, still sealed (base64), in the order
   * they apply (workspace's, then server's), and its kept request, still sealed. Absent: read them.
   */
  sealed_secrets?: { name: string; value: string }[];
  sealed_payload?: { body: string; event: string; deliveryId: string; contentType: string } | null;
}

/** A claimed execution (`dispatched`) with what its agent needs to run it. */
export interface ClaimedExecution {
  id: string;
  workspaceId: string;
  serverId: string;
  start: StartExecution;
}

/** The terminal status a finished report means, and its reason when it is not a plain exit. */
export function outcome(r: ExecutionFinished): { status: ExecutionStatus; error: string | null } {
  if (r.cancelled) return { status: 'cancelled', error: r.error };
  if (r.timedOut) return { status: 'timed_out', error: r.error };
  if (r.error !== null) return { status: 'failed', error: r.error };
  if (r.exitCode === 0) return { status: 'succeeded', error: null };
  return { status: 'failed', error: r.exitCode === null && r.signal ? `killed by ${r.signal}` : null };
}

/** The start command of a claimed run, with its secrets' values (the agent masks them in the output). */
export function startCommand(r: ClaimRow, secrets: Record<string, string> = {}, payload?: RunPayload): StartExecution {
  const env: Record<string, string> = {
    ...secrets,
    DEVPILOT_EXECUTION_ID: r.id,
    DEVPILOT_SCRIPT_ID: r.script_id,
    DEVPILOT_SCRIPT_VERSION: String(r.script_version),
    DEVPILOT_SERVER_ID: r.server_id,
    DEVPILOT_TRIGGER: r.trigger,
  };
  if (r.webhook_id) env.DEVPILOT_WEBHOOK_ID = r.webhook_id;
  if (r.webhook_name !== null) env.DEVPILOT_WEBHOOK_NAME = r.webhook_name;
  return {
    executionId: r.id,
    interpreter: r.interpreter,
    content: r.content,
    env,
    ...(Object.keys(secrets).length ? { maskEnv: Object.keys(secrets) } : {}),
    timeoutMs: r.timeout_seconds * 1000,
    maxOutputBytes: Number(r.max_output_bytes),
    ...(r.run_as ? { runAs: r.run_as } : {}),
    ...(payload ? { payload } : {}),
  };
}

