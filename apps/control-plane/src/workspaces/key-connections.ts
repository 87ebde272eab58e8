import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ApiKeyEvents } from './api-key-events.js';

/**
 * The live connections each API key holds on this node (dashboard feed sockets and SSE streams
 * alike): at most DEVPILOT_VIEWER_CONNECTIONS_PER_KEY together over all nodes, and all closed at
 * once when the key is deleted (here, or on another node: see ClusterNews).
 */
@Injectable()
export class KeyConnections implements OnModuleDestroy {
  private readonly byKey = new Map<string, Set<() => void>>();
  private readonly revoked: Subscription;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    events: ApiKeyEvents,
  ) {
    this.revoked = events.revoked.subscribe(({ keyId }) => this.closeAll(keyId));
  }

  /** Closes every connection the key holds on this node (the key was deleted here or on another node). */
  closeAll(keyId: string): void {
    for (const close of [...(this.byKey.get(keyId) ?? [])]) close();
  }

  onModuleDestroy(): void {
    this.revoked.unsubscribe();
  }

  /**
   * How many connections the key holds on the other nodes (set by ClusterNews, which asks them
   * through the socket.io adapter); a node that does not answer in time counts as none.
   */
  elsewhere: (keyId: string) => Promise<number> = () => Promise.resolve(0);

  /** Connections the key holds on this node. */
  localCount(keyId: string): number {
    return this.byKey.get(keyId)?.size ?? 0;
  }

  /**
   * Takes one of the key's places, counted over every node, for a connection that `close` ends;
   * null when none is left. Call the result once it ended. Two nodes taking the last place at the
   * same moment may both get it: the limit bounds a key's connections, it does not meter them.
   */
  async hold(keyId: string, close: () => void): Promise<(() => void) | null> {
    if (this.localCount(keyId) >= this.config.viewerConnectionsPerKey) return null;
    const others = await this.elsewhere(keyId);
    return this.holdLocal(keyId, close, this.config.viewerConnectionsPerKey - others);
  }

  private holdLocal(keyId: string, close: () => void, limit: number): (() => void) | null {
    const held = this.byKey.get(keyId) ?? new Set<() => void>();
    if (held.size >= limit) return null;
    const entry = () => close();
    held.add(entry);
    this.byKey.set(keyId, held);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      held.delete(entry);
      if (held.size === 0 && this.byKey.get(keyId) === held) this.byKey.delete(keyId);
    };
  }
}
