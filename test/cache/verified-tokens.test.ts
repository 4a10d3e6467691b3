/**
 * The verified-token cache finds entries by signature segment but answers only for the exact
 * token: a token that reuses a cached token's signature with another header or payload misses,
 * and neither it nor its deletion disturbs the cached entry.
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
