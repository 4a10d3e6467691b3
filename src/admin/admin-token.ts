/**
 * The admin bearer token (SPEC §8: the revocation API is refused unless one is configured, and
 * requires it). Read once at start from `admin.token_file`; rotating it needs a restart.
 *
 * Compared in constant time: both sides are hashed to 32-byte SHA-256 digests first, so
 * timingSafeEqual always compares equal lengths and the token's length does not leak either.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { bearerToken } from '../core/decide.ts';
import { StartupError } from '../errors.ts';

/** Shorter tokens are accepted but logged as weak by the caller. */
export const MIN_STRONG_TOKEN_LENGTH = 16;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export class AdminToken {
  readonly #digest: Buffer;
  readonly weak: boolean;

  constructor(token: string) {
    if (token === '') throw new TypeError('the admin token must not be empty');
    this.#digest = digest(token);
    this.weak = token.length < MIN_STRONG_TOKEN_LENGTH;
  }

  /** True when the Authorization header carries exactly this token as a Bearer credential. */
  matches(authorization: string | undefined): boolean {
    if (authorization === undefined) return false;
    const presented = bearerToken(authorization);
    if (presented === undefined || presented === '') return false;
    return timingSafeEqual(digest(presented), this.#digest);
  }
}

/**
 * The token from `admin.token_file` (surrounding whitespace and the trailing newline trimmed), or
 * undefined when no file is configured — then the API refuses every call. A configured file that
 * cannot be read or is empty is an operator error and stops startup.
 */
export function loadAdminToken(file: string | undefined): AdminToken | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new StartupError(`admin.token_file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const token = text.trim();
  const problem = adminTokenProblem(token);
  if (problem !== undefined) throw new StartupError(`admin.token_file ${file}: ${problem}`);
  return new AdminToken(token);
}

/**
 * Why `token` (trimmed) cannot be an admin token, never quoting it: empty, or not one line of visible
 * ASCII — what an `Authorization` header can carry. `jitgate revoke --token-file` applies the same rule
 * (a file with a second line had its whole content printed in fetch's "invalid header value" error).
 */
export function adminTokenProblem(token: string): string | undefined {
  if (token === '') return 'the file is empty';
  // Far above any real token, far below node's 16 KiB head: a longer one could never be sent (a re-probe: 10 MB started).
  if (token.length > MAX_ADMIN_TOKEN_CHARS) return `the token is longer than ${MAX_ADMIN_TOKEN_CHARS} characters, more than a request header carries`;
  if (!/^[\x21-\x7e]+$/.test(token)) return 'the token must be one line of visible ASCII characters, without spaces';
  return undefined;
}

export const MAX_ADMIN_TOKEN_CHARS = 4096;
