import { Module } from '@nestjs/common';
import { AgentLink } from './agent-link.js';

/**
 * AgentLink on its own, so that creating an execution (executions/) can ask whether this node
 * holds a server's agent without the executions module depending on the whole relay.
 */
@Module({ providers: [AgentLink], exports: [AgentLink] })
export class AgentLinkModule {}
