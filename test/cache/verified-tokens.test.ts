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

  it('caches nothing with max_entries 0; once full, admits a token on its second miss and evicts the least recently used', () => {
    const off = new VerifiedTokenCache(0);
    off.set(A, verified('a'));
    expect(off.get(A)).toBeUndefined();
    const one = new VerifiedTokenCache(1);
    one.set(A, verified('a'));
    one.set(B, verified('b')); // full, B not seen before: A stays
    expect(one.get(B)).toBeUndefined();
    expect(one.get(A)).toEqual({ jti: 'a' });
    one.set(B, verified('b')); // B's second miss: admitted, A evicted
    expect(one.get(A)).toBeUndefined();
    expect(one.get(B)).toEqual({ jti: 'b' });
    expect(one.size).toBe(1);
  });

  it('a stream of one-off tokens does not push out the tokens in use (scan resistance)', () => {
    const c = new VerifiedTokenCache(100);
    const token = (i: number): string => `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.${String(i).padStart(50, '0')}${'s'.repeat(36)}`;
    for (let i = 0; i < 100; i++) c.set(token(i), verified(`t${i}`));
    expect(c.size).toBe(100);
    // 399 one-off tokens (the doorkeeper's window is 400): a plain LRU would have evicted all 100.
    for (let i = 1_000; i < 1_399; i++) c.set(token(i), verified('one-off'));
    let kept = 0;
    for (let i = 0; i < 100; i++) if (c.get(token(i)) !== undefined) kept++;
    expect(kept).toBeGreaterThanOrEqual(95); // a doorkeeper false positive may admit a one-off or two
    // A token missed twice within the window is admitted even while the cache is full.
    c.set(token(50_000), verified('again'));
    c.set(token(50_000), verified('again'));
    expect(c.get(token(50_000))).toEqual({ jti: 'again' });
    expect(c.size).toBe(100);
  });

  it('a cyclic rotation of 10,000 tokens through 1,000 entries is answered 10 % from memory (a plain LRU: 0 %)', () => {
    const c = new VerifiedTokenCache(1_000);
    const token = (i: number): string => `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.${String(i).padStart(50, '0')}${'s'.repeat(36)}`;
    const tokens = Array.from({ length: 10_000 }, (_, i) => token(i));
    const request = (t: string): void => {
      if (c.get(t) === undefined) c.set(t, verified(t));
    };
    for (const t of tokens) request(t); // first pass: fills the cache
    const before = { ...c.stats };
    for (let round = 0; round < 3; round++) for (const t of tokens) request(t);
    const hits = c.stats.hits - before.hits;
    expect(hits / 30_000).toBeGreaterThanOrEqual(0.095);
    expect(hits / 30_000).toBeLessThanOrEqual(0.11);
  });

  it('replaces an entry under the same key even when full', () => {
    const c = new VerifiedTokenCache(1);
    c.set(A, verified('a1'));
    c.set(A, verified('a2'));
    expect(c.get(A)).toEqual({ jti: 'a2' });
  });
});
