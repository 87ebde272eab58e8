import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Request } from 'express';
import type { ApiKeyRole } from '../../workspaces/api-key.entity.js';

/** Who is calling: resolved from the Bearer API key by the ApiKeyGuard. */
export interface AuthContext {
  keyId: string;
  workspaceId: string;
  role: ApiKeyRole;
  isAdmin: boolean;
}

export type AuthedRequest = Request & { auth?: AuthContext };

export const IS_PUBLIC = 'devpilot:public';
export const ADMIN_ONLY = 'devpilot:admin-only';
export const VIEWER_MAY_POST = 'devpilot:viewer-may-post';

/** No API key needed (health, the public trigger, the dashboard's files). */
export const Public = () => SetMetadata(IS_PUBLIC, true);
/** A POST that changes nothing a viewer could not already read (e.g. a ticket for the live feed). */
export const ViewerMayPost = () => SetMetadata(VIEWER_MAY_POST, true);
/** Only the instance admin (the bootstrap key). */
export const AdminOnly = () => SetMetadata(ADMIN_ONLY, true);

/** The caller's AuthContext, in a controller method. */
export const Auth = createParamDecorator((_: unknown, ctx: ExecutionContext): AuthContext => {
  const auth = ctx.switchToHttp().getRequest<AuthedRequest>().auth;
  if (!auth) throw new Error('Auth used on a route without the ApiKeyGuard');
  return auth;
});
