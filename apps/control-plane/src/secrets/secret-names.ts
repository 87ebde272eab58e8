/** What a secret's name may be, and which names the platform keeps for itself. */
export const SECRET_NAME = /^[A-Z][A-Z0-9_]*$/;
export const MAX_SECRET_NAME = 64;
/** A value's size, and what one script's declared secrets may add up to (the kernel's environment limit is near). */
export const MAX_SECRET_VALUE_BYTES = 64 * 1024;
export const MAX_SECRETS_PER_RUN_BYTES = 128 * 1024;
export const MAX_SECRETS_PER_SCRIPT = 100;

const RESERVED = new Set(['PATH', 'HOME', 'USER', 'SHELL', 'BASH_ENV', 'ENV', 'IFS', 'PS4', 'NODE_OPTIONS']);

/** Why a name cannot be a secret's, or null when it can. */
export function secretNameProblem(name: string): string | null {
  if (name.length > MAX_SECRET_NAME) return `must be at most ${MAX_SECRET_NAME} characters`;
  if (!SECRET_NAME.test(name)) return 'must match ^[A-Z][A-Z0-9_]*$';
  if (name.startsWith('DEVPILOT_') || name.startsWith('LD_') || RESERVED.has(name)) return 'is reserved for the platform';
  return null;
}
