/**
 * The runtime's own ceiling for the cold path (issue 20): what a minimal Node gate costs when it does nothing but
 * verify every token synchronously with node:crypto and check the claims — no cache, no audit, no metrics, no
 * canonicalization beyond a prefix match. baseline-proxy.ts runs it before forwarding in its `sync-verify` mode.
 * jitgate's rotating-token row is judged against this row (≥ 0.95 ×), not against a plain proxy.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { p1363ToDer } from '../../src/core/jws-signature.ts';
import { readFileSync } from 'node:fs';

interface Jwk {
  readonly kid?: string;
  readonly kty: string;
  readonly crv?: string;
}

const HASH: Readonly<Record<string, string | null>> = { ES256: 'sha256', ES384: 'sha384', RS256: 'sha256', PS256: 'sha256', EdDSA: null, Ed25519: null };

export interface SyncVerifier {
  /** undefined: allowed; else the status to answer. */
  check(authorization: string | undefined, method: string, path: string): number | undefined;
}

export function syncVerifier(jwksPath: string, issuer: string, audience: string, pathPrefix: string): SyncVerifier {
  const keys = new Map<string, KeyObject>();
  for (const jwk of (JSON.parse(readFileSync(jwksPath, 'utf8')) as { keys: Jwk[] }).keys) keys.set(jwk.kid ?? '', createPublicKey({ key: jwk as never, format: 'jwk' }));
  return {
    check(authorization, method, path) {
      if (authorization === undefined || !authorization.startsWith('Bearer ')) return 401;
      const token = authorization.slice(7);
      const d1 = token.indexOf('.');
      const d2 = token.indexOf('.', d1 + 1);
      if (d1 < 0 || d2 < 0) return 401;
      let header: { alg?: string; kid?: string };
      let claims: { iss?: string; aud?: string | string[]; exp?: number; iat?: number; authorization_details?: { actions?: string[] }[] };
      try {
        header = JSON.parse(Buffer.from(token.slice(0, d1), 'base64url').toString('utf8')) as typeof header;
        claims = JSON.parse(Buffer.from(token.slice(d1 + 1, d2), 'base64url').toString('utf8')) as typeof claims;
      } catch {
        return 401;
      }
      const key = keys.get(header.kid ?? '');
      const hash = HASH[header.alg ?? ''];
      if (key === undefined || hash === undefined) return 401;
      // The runtime's fastest form, as jitgate uses it: a bare KeyObject and a DER signature for ECDSA. An options
      // object ({ key, dsaEncoding }) makes node:crypto throw and catch two TypeErrors per call (jws-signature.ts).
      const sig = Buffer.from(token.slice(d2 + 1), 'base64url');
      const input = Buffer.from(token.slice(0, d2));
      let ok: boolean;
      if (header.alg === 'PS256') {
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 0;
        ok = verify(hash, input, { key, padding: 6, saltLength: 32 }, sig);
        Error.stackTraceLimit = limit;
      } else ok = verify(hash, input, key, header.alg?.startsWith('ES') ? p1363ToDer(sig) : sig);
      if (!ok) return 401;
      const now = Date.now() / 1000;
      if (claims.iss !== issuer || typeof claims.exp !== 'number' || claims.exp <= now || (typeof claims.iat === 'number' && claims.iat > now + 5)) return 401;
      if (!(claims.aud === audience || (Array.isArray(claims.aud) && claims.aud.includes(audience)))) return 401;
      if (!path.startsWith(pathPrefix) || !claims.authorization_details?.some((e) => e.actions?.includes(method))) return 403;
      return undefined;
    },
  };
}
