import { Global, Module } from '@nestjs/common';
import { HandshakeGates } from './handshake-gates.js';
import { SecretsService } from './secrets.service.js';

@Global()
@Module({ providers: [SecretsService, HandshakeGates], exports: [SecretsService, HandshakeGates] })
export class CommonModule {}
