import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ApiKeyEvents } from './api-key-events.js';

/**
 * The live connections each API key holds on this node (dashboard feed sockets and SSE streams
 * alike): at most DEVPILOT_VIEWER_CONNECTIONS_PER_KEY together, and all closed at once when the
 * key is deleted.
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

  /** Takes one of the key's places for a connection that `close` ends; null when none is left. Call the result once it ended. */
  hold(keyId: string, close: () => void): (() => void) | null {
    const held = this.byKey.get(keyId) ?? new Set<() => void>();
    if (held.size >= this.config.viewerConnectionsPerKey) return null;
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
