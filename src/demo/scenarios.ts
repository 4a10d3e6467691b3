/**
 * The requests `jitgate demo` prints, each with the status it must get, and their rendering as ready-to-paste
 * `curl` lines. The printed block is also a machine-readable contract (test/cli/demo.test.ts parses it): every
 * line that starts with `curl ` is preceded by a line `# expect <status> — <why>`, and a curl line has only the
 * forms `curl -i [--cacert FILE [--cert FILE --key FILE]] [-X METHOD] [-H 'Name: value'] URL`; a file name is
 * single-quoted when it holds anything but letters, digits and `_@%+=:,./-`.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import { mintToken } from '../issuing/mint-token.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER } from './demo-config.ts';

export const DEMO_SUBJECT = 'spiffe://demo/ci-deployer';
/** Tokens stay usable for this long after the demo prints them. */
export const DEMO_TTL_SECONDS = 600;

export interface DemoRequest {
  readonly expect: number;
  readonly why: string;
  readonly method: string;
  /** Path on the gate, e.g. /orders/42. */
  readonly path: string;
  readonly token?: string;
  /** Over TLS: the CA file the client trusts the gate by and, when it presents one, its certificate and key. */
  readonly tls?: { readonly caFile: string; readonly certFile?: string; readonly keyFile?: string };
}

export interface DemoTokens {
  /** GET on /orders/42 and everything under it, for DEMO_TTL_SECONDS. */
  readonly granted: string;
  /** Same grant, issued 20 minutes ago with a 5 minute lifetime. */
  readonly expired: string;
  /** Same grant; the caller revokes its jti. */
  readonly revoked: string;
  readonly revokedJti: string;
  /** exp of the revoked token: after it the revocation entry may be pruned. */
  readonly revokedExp: number;
}

/** What every demo token grants. */
export const DEMO_GRANT = { actions: ['GET'], paths: ['/orders/42', '/orders/42/**'] } as const;

export async function mintDemoTokens(key: JWK, nowSeconds = Math.floor(Date.now() / 1000)): Promise<DemoTokens> {
  const base = { key, iss: DEMO_ISSUER, aud: DEMO_AUDIENCE, sub: DEMO_SUBJECT, actions: [...DEMO_GRANT.actions], paths: [...DEMO_GRANT.paths] };
  const revokedJti = `demo-revoked-${randomUUID()}`;
  const [granted, expired, revoked] = await Promise.all([
    mintToken({ ...base, iat: nowSeconds, ttlSeconds: DEMO_TTL_SECONDS, txn: 'demo-4711' }),
    mintToken({ ...base, iat: nowSeconds - 20 * 60, ttlSeconds: 5 * 60, txn: 'demo-4711' }),
    mintToken({ ...base, iat: nowSeconds, ttlSeconds: DEMO_TTL_SECONDS, jti: revokedJti, txn: 'demo-4712' }),
  ]);
  return { granted, expired, revoked, revokedJti, revokedExp: nowSeconds + DEMO_TTL_SECONDS };
}

/** The printed requests, in order. `revokedVia` says how the revoked token was revoked, for its comment. */
export function demoRequests(tokens: DemoTokens, revokedVia: string): DemoRequest[] {
  return [
    { expect: 200, why: 'allowed: the grant covers GET /orders/42 and /orders/42/**', method: 'GET', path: '/orders/42', token: tokens.granted },
    { expect: 200, why: 'allowed: below the granted path (** matches any depth)', method: 'GET', path: '/orders/42/items/1', token: tokens.granted },
    { expect: 403, why: 'outside the grant: the same token, but DELETE was not granted', method: 'DELETE', path: '/orders/42', token: tokens.granted },
    { expect: 403, why: 'outside the grant: the same token, but /orders/43 was not granted', method: 'GET', path: '/orders/43', token: tokens.granted },
    { expect: 401, why: 'no token at all', method: 'GET', path: '/orders/42' },
    { expect: 401, why: 'expired: issued 20 minutes ago for 5 minutes (reason "expired")', method: 'GET', path: '/orders/42', token: tokens.expired },
    { expect: 401, why: `revoked: its jti was revoked ${revokedVia} (reason "revoked")`, method: 'GET', path: '/orders/42', token: tokens.revoked },
  ];
}

/** A file name as a shell word: bare when that is safe, else single-quoted. */
export function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/**
 * One curl command line; single quotes are safe around a JWT (base64url and dots only). `show` turns a file path
 * into the form printed (e.g. relative to the working directory).
 */
export function curlLine(baseUrl: string, r: DemoRequest, show: (path: string) => string = (p) => p): string {
  const parts = ['curl -i'];
  if (r.tls !== undefined) {
    parts.push(`--cacert ${shellWord(show(r.tls.caFile))}`);
    if (r.tls.certFile !== undefined && r.tls.keyFile !== undefined) parts.push(`--cert ${shellWord(show(r.tls.certFile))} --key ${shellWord(show(r.tls.keyFile))}`);
  }
  if (r.method !== 'GET') parts.push(`-X ${r.method}`);
  if (r.token !== undefined) parts.push(`-H 'Authorization: Bearer ${r.token}'`);
  parts.push(`${baseUrl}${r.path}`);
  return parts.join(' ');
}

/** `# expect …` comment + curl line for each request, separated by blank lines. */
export function renderRequests(baseUrl: string, requests: readonly DemoRequest[], show?: (path: string) => string): string {
  return requests.map((r) => `# expect ${r.expect} — ${r.why}\n${curlLine(baseUrl, r, show)}\n`).join('\n');
}

/** Runs one request against the gate (used to wait until a revocation is enforced). */
export async function statusOf(baseUrl: string, r: DemoRequest): Promise<number> {
  const headers: Record<string, string> = {};
  if (r.token !== undefined) headers.authorization = `Bearer ${r.token}`;
  const res = await fetch(`${baseUrl}${r.path}`, { method: r.method, headers });
  await res.body?.cancel();
  return res.status;
}
