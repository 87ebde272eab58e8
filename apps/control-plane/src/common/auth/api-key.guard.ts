import { type CanActivate, type ExecutionContext, HttpStatus, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiKeysService } from '../../workspaces/api-keys.service.js';
import { AppException } from '../app-exception.js';
import { ADMIN_ONLY, type AuthedRequest, IS_PUBLIC, VIEWER_MAY_POST } from './auth-context.js';

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Every route needs `Authorization: Bearer <api key>` unless marked @Public().
 * A viewer key may only read; @AdminOnly() routes need the instance admin key.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly apiKeys: ApiKeysService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw new AppException(HttpStatus.UNAUTHORIZED, 'UNAUTHORIZED', 'Missing API key: send Authorization: Bearer <api key>');
    const auth = await this.apiKeys.authenticate(match[1]);
    if (!auth) throw new AppException(HttpStatus.UNAUTHORIZED, 'UNAUTHORIZED', 'Invalid API key');
    req.auth = auth;
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ONLY, targets) && !auth.isAdmin) {
      throw new AppException(HttpStatus.FORBIDDEN, 'FORBIDDEN', 'Only the instance admin key may do this');
    }
    if (!READ_METHODS.has(req.method) && auth.role !== 'owner' && !this.reflector.getAllAndOverride<boolean>(VIEWER_MAY_POST, targets)) {
      throw new AppException(HttpStatus.FORBIDDEN, 'FORBIDDEN', 'A viewer key can read but not change anything');
    }
    return true;
  }
}
