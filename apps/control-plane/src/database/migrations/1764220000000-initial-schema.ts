import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The whole data model (docs/architecture.md, "Data model"). Every row but a workspace belongs to exactly one workspace. */
export class InitialSchema1764220000000 implements MigrationInterface {
  name = 'InitialSchema1764220000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE workspace (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE api_key (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        workspace_id uuid NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('owner', 'viewer')),
        key_hash bytea NOT NULL UNIQUE,
        key_prefix text NOT NULL,
        is_admin boolean NOT NULL DEFAULT false,
        last_used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX api_key_workspace_idx ON api_key (workspace_id, created_at)`);
    await q.query(`
      CREATE TABLE server (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        workspace_id uuid NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
        name text NOT NULL,
        agent_token_hash bytea NOT NULL UNIQUE,
        status text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline')),
        last_seen_at timestamptz,
        hostname text,
        platform text,
        agent_version text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (workspace_id, name)
      )`);
    await q.query(`
      CREATE TABLE script (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        workspace_id uuid NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
        name text NOT NULL,
        description text NOT NULL DEFAULT '',
        interpreter text NOT NULL DEFAULT 'bash' CHECK (interpreter IN ('bash', 'sh', 'python3', 'node')),
        timeout_seconds integer NOT NULL DEFAULT 300 CHECK (timeout_seconds BETWEEN 1 AND 3600),
        max_output_bytes bigint NOT NULL DEFAULT 67108864 CHECK (max_output_bytes >= 0),
        current_version integer NOT NULL DEFAULT 1 CHECK (current_version >= 1),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX script_workspace_idx ON script (workspace_id, created_at DESC, id DESC)`);
    await q.query(`
      CREATE TABLE script_version (
        script_id uuid NOT NULL REFERENCES script(id) ON DELETE CASCADE,
        version integer NOT NULL CHECK (version >= 1),
        content text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (script_id, version)
      )`);
    await q.query(`
      CREATE TABLE webhook (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        workspace_id uuid NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
        script_id uuid NOT NULL REFERENCES script(id) ON DELETE CASCADE,
        server_id uuid NOT NULL REFERENCES server(id) ON DELETE CASCADE,
        name text NOT NULL,
        token_encrypted bytea NOT NULL,
        token_hash bytea NOT NULL UNIQUE,
        active boolean NOT NULL DEFAULT true,
        allowed_ips text[] NOT NULL DEFAULT '{}',
        hmac_secret_encrypted bytea,
        hmac_enabled boolean NOT NULL DEFAULT false,
        call_count bigint NOT NULL DEFAULT 0,
        last_called_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX webhook_script_idx ON webhook (script_id, created_at DESC)`);
    await q.query(`CREATE INDEX webhook_workspace_idx ON webhook (workspace_id)`);
    await q.query(`
      CREATE TABLE execution (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        workspace_id uuid NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
        script_id uuid NOT NULL REFERENCES script(id) ON DELETE CASCADE,
        script_version integer NOT NULL,
        server_id uuid NOT NULL REFERENCES server(id) ON DELETE CASCADE,
        webhook_id uuid REFERENCES webhook(id) ON DELETE SET NULL,
        trigger text NOT NULL CHECK (trigger IN ('webhook', 'manual', 'api')),
        status text NOT NULL DEFAULT 'queued' CHECK (status IN
          ('queued', 'dispatched', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'undeliverable')),
        exit_code integer,
        signal text,
        error text,
        queued_at timestamptz NOT NULL DEFAULT now(),
        deliver_by timestamptz NOT NULL,
        dispatched_at timestamptz,
        started_at timestamptz,
        finished_at timestamptz,
        output_bytes bigint NOT NULL DEFAULT 0,
        output_truncated boolean NOT NULL DEFAULT false,
        finish_report jsonb,
        cancel_requested boolean NOT NULL DEFAULT false
      )`);
    await q.query(`CREATE INDEX execution_workspace_idx ON execution (workspace_id, queued_at DESC, id DESC)`);
    await q.query(`CREATE INDEX execution_script_idx ON execution (script_id, queued_at DESC)`);
    await q.query(`CREATE INDEX execution_webhook_idx ON execution (webhook_id, queued_at DESC) WHERE webhook_id IS NOT NULL`);
    await q.query(
      `CREATE INDEX execution_active_idx ON execution (server_id, queued_at) WHERE status IN ('queued', 'dispatched', 'running')`,
    );
    await q.query(`
      CREATE TABLE execution_output (
        execution_id uuid NOT NULL REFERENCES execution(id) ON DELETE CASCADE,
        seq integer NOT NULL CHECK (seq >= 0),
        stream text NOT NULL CHECK (stream IN ('stdout', 'stderr')),
        data bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (execution_id, seq)
      )`);
    await q.query(`
      CREATE TABLE webhook_delivery (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        webhook_id uuid REFERENCES webhook(id) ON DELETE CASCADE,
        workspace_id uuid REFERENCES workspace(id) ON DELETE CASCADE,
        source_ip text NOT NULL,
        status_code integer NOT NULL,
        code text NOT NULL,
        reason text NOT NULL,
        execution_id uuid,
        user_agent text,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX webhook_delivery_webhook_idx ON webhook_delivery (webhook_id, created_at DESC)`);
    await q.query(`CREATE INDEX webhook_delivery_unmatched_idx ON webhook_delivery (created_at) WHERE webhook_id IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['webhook_delivery', 'execution_output', 'execution', 'webhook', 'script_version', 'script', 'server', 'api_key', 'workspace']) {
      await q.query(`DROP TABLE IF EXISTS ${t}`);
    }
  }
}
