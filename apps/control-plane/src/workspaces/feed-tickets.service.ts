import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import type { AuthContext } from '../common/auth/auth-context.js';
import { sha256 } from '../common/tokens.js';
import type { ApiKeyRole } from './api-key.entity.js';

/** How long a ticket may wait to be used: long enough for a slow network, short enough that a leaked URL is worthless. */
export const FEED_TICKET_SECONDS = 45;

/**
 * One-time tickets for the `/dashboard` socket. A browser cannot set headers on a WebSocket, so
 * the SPA asks for a ticket with its API key (over HTTPS, in a header) and puts the ticket in the
 * upgrade URL: single use, short-lived, and worthless once redeemed. Kept hashed in PostgreSQL,
 * so the node that redeems it need not be the one that issued it.
 */
@Injectable()
export class FeedTickets {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async issue(auth: AuthContext): Promise<{ ticket: string; expiresAt: Date }> {
    const ticket = `dpt_${randomBytes(32).toString('base64url')}`;
    // Expired tickets go as new ones come: the table holds at most a minute's worth.
    const rows: { expires_at: Date }[] = await this.db.query(
      `WITH expired AS (DELETE FROM feed_ticket WHERE expires_at < now())
       INSERT INTO feed_ticket (ticket_hash, api_key_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
       RETURNING expires_at`,
      [sha256(ticket), auth.keyId, FEED_TICKET_SECONDS],
    );
    return { ticket, expiresAt: rows[0]!.expires_at };
  }

  /** The key a ticket was issued to, once: the ticket is gone after this (used, expired or unknown: null). */
  async redeem(ticket: string): Promise<{ keyId: string; workspaceId: string; role: ApiKeyRole } | null> {
    if (ticket.length > 128) return null;
    const rows: { id: string; workspace_id: string; role: ApiKeyRole }[] = await this.db.query(
      // A SELECT around the DELETE: one atomic statement, answered as rows (the driver answers a bare DELETE with a count).
      `WITH used AS (DELETE FROM feed_ticket WHERE ticket_hash = $1 RETURNING api_key_id, expires_at)
       SELECT k.id, k.workspace_id, k.role FROM used JOIN api_key k ON k.id = used.api_key_id WHERE used.expires_at > now()`,
      [sha256(ticket)],
    );
    const row = rows[0];
    return row ? { keyId: row.id, workspaceId: row.workspace_id, role: row.role } : null;
  }
}
