/**
 * The verified-token cache finds entries by the token's last 43 characters (signature) but answers
 * only for the exact token: a token that reuses a cached token's signature (or its tail) with
 * another header, payload or signature start misses, and neither it nor its deletion disturbs
 * the cached entry.
 */
import { describe, expect, it } from 'vitest';
import { VerifiedTokenCache } from '../../src/cache/verified-tokens.ts';
import type { VerifiedToken } from '../../src/core/verified-token.ts';

const verified = (jti: string) => ({ jti }) as unknown as VerifiedToken;
const A = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLWE';
const FORGED = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLWE'; // A's signature, another payload
const B = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiIn0.c2lnbmF0dXJlLWI';

describe('VerifiedTokenCache', () => {
  it('hits only for the exact token', () => {
    const c = new VerifiedTokenCache(10);
    c.set(A, verified('a'));
    c.set(B, verified('b'));
    expect(c.get(A)).toEqual({ jti: 'a' });
    expect(c.get(B)).toEqual({ jti: 'b' });
    expect(c.get(FORGED)).toBeUndefined();
    expect(c.get(`${A}x`)).toBeUndefined();
    expect(c.stats).toEqual({ hits: 2, misses: 2 });
  });

  it('deleting a look-alike leaves the cached token; deleting the token removes it', () => {
    const c = new VerifiedTokenCache(10);
    c.set(A, verified('a'));
    c.delete(FORGED);
    expect(c.get(A)).toEqual({ jti: 'a' });
    c.delete(A);
    expect(c.get(A)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('a token with the same signature tail but another signature start or payload misses and cannot evict', () => {
    const sig = 'S'.repeat(43) + 'T'.repeat(43); // an ES256-sized signature segment
    const real = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.${sig}`;
    const otherStart = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.${'X'.repeat(43)}${'T'.repeat(43)}`;
    const otherPayload = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.${sig}`;
    const c = new VerifiedTokenCache(10);
    c.set(real, verified('real'));
    for (const lookAlike of [otherStart, otherPayload]) {
      expect(c.get(lookAlike)).toBeUndefined();
      c.delete(lookAlike);
      expect(c.get(real)).toEqual({ jti: 'real' });
    }
    expect(c.size).toBe(1);
  });

  it('caches nothing with max_entries 0, and evicts the least recently used', () => {
    const off = new VerifiedTokenCache(0);
    off.set(A, verified('a'));
    expect(off.get(A)).toBeUndefined();
    const one = new VerifiedTokenCache(1);
    one.set(A, verified('a'));
    one.set(B, verified('b'));
    expect(one.get(A)).toBeUndefined();
    expect(one.get(B)).toEqual({ jti: 'b' });
  });
});
