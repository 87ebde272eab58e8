import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { AgentLink } from './agent-link.js';

/** Up once the /agent gateway's socket.io namespace is initialised. */
@Injectable()
export class AgentsHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly link: AgentLink,
  ) {}

  check(key = 'agents') {
    const session = this.indicators.check(key);
    if (!this.link.initialised) return session.down({ message: 'the /agent gateway is not initialised' });
    return session.up({ localAgents: this.link.localServers().length });
  }
}
