import { Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';

/** A credential checked on the upgrade: what the namespace middleware then finds on `socket.request`. */
export type HandshakeCredential =
  | { kind: 'agent'; serverId: string; workspaceId: string; tokenHash: Buffer }
  | { kind: 'viewer'; keyId: string; workspaceId: string; role: 'owner' | 'viewer' };

/** Null: accepted (the credential is on the request); else the refusal's message. */
export type HandshakeCheck = (req: IncomingMessage) => Promise<string | null>;

type CheckedRequest = IncomingMessage & { devpilotCredential?: HandshakeCredential };

export function attachCredential(req: IncomingMessage, credential: HandshakeCredential): void {
  (req as CheckedRequest).devpilotCredential = credential;
}

export function credentialOf(req: IncomingMessage): HandshakeCredential | undefined {
  return (req as CheckedRequest).devpilotCredential;
}

/** `Authorization: Bearer <secret>` of a request, or null. */
export function bearerOf(req: IncomingMessage): string | null {
  const match = /^Bearer\s+(\S{1,512})\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1] ?? null;
}

/**
 * The credential check of each socket.io engine (by path), run by socket.io's `allowRequest` on
 * the HTTP request that opens a connection, before any packet of it is read: a caller without a
 * valid credential never gets a packet parsed. The gateways register theirs when created, before
 * the engines exist.
 */
@Injectable()
export class HandshakeGates {
  private readonly checks = new Map<string, HandshakeCheck>();

  register(path: string, check: HandshakeCheck): void {
    this.checks.set(path, check);
  }

  get(path: string): HandshakeCheck | undefined {
    return this.checks.get(path);
  }
}
