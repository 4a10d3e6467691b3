/**
 * The requests of a `jitgate bench` run, made before the load starts: for each kind that uses a token, `tokens`
 * distinct grant tokens minted from the key (so a gate with a token cache sees N different tokens in rotation), and
 * for each mix kind the request that provokes it. Minting happens once, up front: the load loop only picks prepared
 * requests.
 *
 * `outside` has tokens of its own, and every token its own `txn` (`jitgate-bench-<run>-<kind>-<n>`): a gate with the
 * anomaly response on (SPEC §12) revokes a token that keeps probing outside its grant, and with one shared task that
 * revoked every token of the run, the `allow` kind's too, for the rest of their lifetime. `bad-signature` forges the
 * `allow` tokens' signatures: a gate cannot trust a forged token's claims, so they name no task it could revoke.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { mintToken } from '../issuing/mint-token.ts';
import { grantPaths } from './grant-paths.ts';
import type { Kind } from './mix.ts';

export interface BenchRequest {
  readonly kind: Kind;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface GrantShape {
  readonly key: JWK;
  readonly iss: string;
  readonly aud: string;
  readonly sub: string;
  readonly action: string;
  /** The path the requests go to; the grant covers it (and everything below it). */
  readonly path: string;
  /** A path the grant does not cover, for `outside`. */
  readonly outsidePath: string;
  readonly ttlSeconds: number;
  /** Extra headers on every request (e.g. Host). */
  readonly headers: Readonly<Record<string, string>>;
}

/** Flips one base64url character of the signature, so the token still parses but no longer verifies. */
export function forgeSignature(token: string): string {
  const i = token.length - 2;
  const c = token[i]!;
  return token.slice(0, i) + (c === 'A' ? 'B' : 'A') + token.slice(i + 1);
}

/**
 * The prepared requests by kind: `count` of each kind that uses a token (distinct tokens), one for `no-token`.
 * `onProgress` is called after each minted token (for a progress line).
 */
export async function prepareRequests(g: GrantShape, kinds: readonly Kind[], count: number, onProgress?: (done: number, total: number) => void): Promise<Map<Kind, BenchRequest[]>> {
  const now = Math.floor(Date.now() / 1000);
  const run = `jitgate-bench-${randomBytes(4).toString('hex')}`;
  const base = { key: g.key, iss: g.iss, aud: g.aud, sub: g.sub, actions: [g.action], paths: grantPaths(g.path) };
  // Issued 20 minutes ago for 5 minutes: past any clock tolerance.
  const minted = { allow: [now, g.ttlSeconds], outside: [now, g.ttlSeconds], expired: [now - 1200, 300] } as const;
  const sets = (Object.keys(minted) as (keyof typeof minted)[]).filter((set) => kinds.includes(set) || (set === 'allow' && kinds.includes('bad-signature')));
  const total = sets.length * count;
  let done = 0;
  const tokens = new Map<keyof typeof minted, string[]>();
  for (const set of sets) {
    const [iat, ttl] = minted[set];
    const list: string[] = [];
    for (let i = 0; i < count; i++) {
      list.push(await mintToken({ ...base, iat, ttlSeconds: ttl, txn: `${run}-${set}-${i}` }));
      onProgress?.(++done, total);
    }
    tokens.set(set, list);
  }

  const req = (kind: Kind, path: string, token?: string): BenchRequest => ({
    kind,
    method: g.action,
    path,
    headers: token === undefined ? { ...g.headers } : { ...g.headers, authorization: `Bearer ${token}` },
  });
  const out = new Map<Kind, BenchRequest[]>();
  for (const kind of kinds) {
    switch (kind) {
      case 'allow':
        out.set(kind, tokens.get('allow')!.map((t) => req(kind, g.path, t)));
        break;
      case 'outside':
        out.set(kind, tokens.get('outside')!.map((t) => req(kind, g.outsidePath, t)));
        break;
      case 'bad-signature':
        out.set(kind, tokens.get('allow')!.map((t) => req(kind, g.path, forgeSignature(t))));
        break;
      case 'expired':
        out.set(kind, tokens.get('expired')!.map((t) => req(kind, g.path, t)));
        break;
      case 'no-token':
        out.set(kind, [req(kind, g.path)]);
        break;
    }
  }
  return out;
}
