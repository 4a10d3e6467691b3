/**
 * The DPoP replay cache (RFC 9449 §11.1; docs/operations.md "Replay cache"): a proof is refused as a replay while
 * its entry lives, and a new proof is refused as `full` only when every entry is still live — whatever order the
 * entries' expiries came in.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DpopReplayCache } from '../../src/cache/dpop-replay.ts';

describe('DpopReplayCache', () => {
  // A probe: entries were freed in insertion order, so one proof dated ahead (iat = now + 4.9 s, window 5 s) at the
  // front held the nine expired ones behind it until 9.9 s, and an honest client's proofs were refused as full.
  it('a proof dated ahead does not hold the entries that expired behind it', () => {
    const c = new DpopReplayCache(10);
    const windowMs = 5_000;
    expect(c.add('ahead', 4_900 + windowMs, 0)).toBe('fresh');
    for (let i = 0; i < 9; i++) expect(c.add(`now-${i}`, windowMs, 0)).toBe('fresh');
    expect(c.add('late', 1_000 + windowMs, 1_000)).toBe('full');
    expect(c.add('after-window', 5_001 + windowMs, 5_001)).toBe('fresh');
    // The dated-ahead proof is still a replay for as long as its iat is in the window.
    expect(c.add('ahead', 9_000 + windowMs, 9_000)).toBe('replay');
    expect(c.has('ahead', 9_900)).toBe(true);
  });

  it('keys proofs by client key and jti', () => {
    const c = new DpopReplayCache(4);
    expect(c.add('j', 100, 0, 'key-a')).toBe('fresh');
    expect(c.add('j', 100, 0, 'key-b')).toBe('fresh');
    expect(c.add('j', 100, 50, 'key-a')).toBe('replay');
  });

  it('agrees with a model: replay while live, full exactly when every entry is live, bounded memory', () => {
    type Op = { key: number; ahead: number; step: number };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.record({ key: fc.integer({ min: 0, max: 12 }), ahead: fc.integer({ min: 0, max: 30 }), step: fc.integer({ min: 0, max: 7 }) }), { maxLength: 200 }), (max, ops: Op[]) => {
        const c = new DpopReplayCache(max);
        const model = new Map<string, number>();
        let now = 0;
        for (const op of ops) {
          now += op.step;
          const key = `k${op.key}`;
          const until = now + 10 + op.ahead;
          const seen = model.get(key);
          let expected: string;
          if (seen !== undefined && seen >= now) expected = 'replay';
          else {
            for (const [k, u] of model) if (u < now) model.delete(k);
            if (seen === undefined && model.size >= max) expected = 'full';
            else {
              model.set(key, until);
              expected = 'fresh';
            }
          }
          expect(c.add(key, until, now)).toBe(expected);
          expect(c.has(key, now)).toBe(expected !== 'full');
          expect(c.size).toBeLessThanOrEqual(max);
        }
      }),
      { numRuns: 500 },
    );
  });
});
