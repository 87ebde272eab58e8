import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ScriptSecret } from './secret.entity.js';
import { SecretsController } from './secrets.controller.js';
import { ScriptSecretsService } from './secrets.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([ScriptSecret])],
  controllers: [SecretsController],
  providers: [ScriptSecretsService],
  exports: [ScriptSecretsService],
})
export class SecretsModule {}
