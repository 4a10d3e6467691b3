/**
 * The in-memory index every revocation source feeds (file, journal, URL feed, Redis): each entry
 * revokes until its own exp plus retention (SPEC §5), whatever other entries arrive beside it.
 * Found by a review: a later `sub` cut-off with a short exp swallowed an earlier one without exp,
 * and once the later one was pruned the subject's revoked tokens were allowed again.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RevocationEntry } from '../../src/revocation/entries.ts';
import { RevocationIndex } from '../../src/revocation/revocation-index.ts';

const sub = (s: string, before: number, exp?: number): RevocationEntry => ({ kind: 'sub', sub: s, before, exp });

describe('RevocationIndex, sub cut-offs', () => {
  it('keeps an earlier cut-off without exp after a later one with a short exp is pruned (either order)', async () => {
    const now = 1_000_000;
    for (const order of [0, 1]) {
      const entries = [sub('bot', now + 100, now + 2), sub('bot', now)];
      const index = new RevocationIndex(order === 0 ? entries : entries.reverse());
      expect(index.isRevoked('j', 'bot', now - 30, undefined)).toBe(true);
      expect(index.isRevoked('j', 'bot', now + 50, undefined)).toBe(true); // the later cut-off, still held
      await index.prune(now + 60);
      expect(index.isRevoked('j', 'bot', now - 30, undefined)).toBe(true);
      expect(index.isRevoked('j', 'bot', now + 50, undefined)).toBe(false);
      expect([...index.entries()]).toEqual([sub('bot', now)]);
      expect(index.size).toBe(1);
    }
  });

  it('drops a cut-off another one outreaches and outlasts; covers() weighs exp too', async () => {
    const index = new RevocationIndex([sub('s', 100, 500), sub('s', 50, 400), sub('s', 80, 900)]);
    // (50, 400) is outreached and outlasted by (100, 500); (80, 900) outlasts both.
    expect([...index.entries()]).toEqual([sub('s', 80, 900), sub('s', 100, 500)]);
    expect(index.covers(sub('s', 90, 900))).toBe(false);
    expect(index.covers(sub('s', 80, 900))).toBe(true);
    expect(index.covers(sub('s', 100, 600))).toBe(false);
    expect(await index.countExpiringAfter(600)).toBe(1);
    const j = new RevocationIndex([{ kind: 'jti', jti: 'a', exp: 10 }]);
    expect(j.covers({ kind: 'jti', jti: 'a', exp: 5 })).toBe(true);
    expect(j.covers({ kind: 'jti', jti: 'a', exp: undefined })).toBe(false);
  });

  it('answers as a plain list of entries would, pruned at any time; size counts what it holds (property)', async () => {
    const entry = fc.record({ before: fc.integer({ min: 0, max: 100 }), exp: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }) });
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { maxLength: 40 }), fc.integer({ min: 0, max: 110 }), fc.integer({ min: 0, max: 110 }), async (list, pruneAt, iat) => {
        const index = new RevocationIndex(list.map((e) => sub('s', e.before, e.exp)));
        // The frontier: before strictly ascending, exp strictly descending.
        const held = [...index.entries()].map((e) => [(e as { before: number }).before, e.exp ?? Infinity] as const);
        for (let i = 1; i < held.length; i++) expect(held[i]![0] > held[i - 1]![0] && held[i]![1] < held[i - 1]![1]).toBe(true);
        expect(index.size).toBe(held.length);
        await index.prune(pruneAt);
        expect(index.size).toBe([...index.entries()].length);
        expect(await index.countExpiringAfter(pruneAt)).toBe([...index.entries()].filter((e) => (e.exp ?? Infinity) > pruneAt).length);
        const expected = list.some((e) => (e.exp ?? Infinity) >= pruneAt && iat < e.before);
        expect(index.isRevoked('j', 's', iat, undefined)).toBe(expected);
        // What it hands on (entries) revokes the same as what it holds.
        expect(new RevocationIndex(index.entries()).isRevoked('j', 's', iat, undefined)).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('takes 200,000 cut-offs of one subject in either order, holding at most 1,024 and never revoking less than they do (a re-probe: 100,000 took 8 s)', async () => {
    const n = 200_000;
    const timeOrder = Array.from({ length: n }, (_, i) => ({ before: 1_000 + i, exp: 10_000_000 - i }));
    // What the entries themselves revoke at `now` (nothing pruned): iat < the largest before of those not yet past their exp.
    const modelRevokes = (iat: number, now: number): boolean => timeOrder.some((c) => c.exp >= now && iat < c.before);
    for (const list of [timeOrder, [...timeOrder].reverse()]) {
      const index = new RevocationIndex(list.map((c) => sub('s', c.before, c.exp)));
      expect(index.size).toBeLessThanOrEqual(1024);
      expect(index.isRevoked('j', 's', 1_000 + n - 2, undefined)).toBe(true);
      for (const now of [0, 10_000_000 - n + 5, 10_000_000 - 1_000]) {
        const pruned = new RevocationIndex(index.entries());
        await pruned.prune(now);
        for (const iat of [999, 1_000, 1_500, 1_000 + n / 2, 1_000 + n - 1, 1_000 + n]) {
          if (modelRevokes(iat, now)) expect(pruned.isRevoked('j', 's', iat, undefined)).toBe(true);
        }
      }
    }
  });

  it('never hands on a cut-off it made by merging as if someone had written it (a re-probe saw one written back to Redis)', () => {
    const written = Array.from({ length: 1_100 }, (_, i) => sub('s', 1_000 + i, 100_000 - i));
    const index = new RevocationIndex(written);
    const key = (e: RevocationEntry) => JSON.stringify(e);
    const real = new Set(written.map(key));
    const handedOn = [...index.entries(false)];
    expect(handedOn.length).toBeGreaterThan(0);
    for (const e of handedOn) expect(real.has(key(e))).toBe(true);
    expect([...index.entries()].some((e) => !real.has(key(e)))).toBe(true); // the merged ones are still enforced
  });

  it('prunes a million entries in slices: timers run while it walks (the periodic prune held the event loop 14–80 ms)', async () => {
    const index = new RevocationIndex();
    for (let i = 0; i < 1_000_000; i++) index.add({ kind: i % 2 === 0 ? 'jti' : 'txn', [i % 2 === 0 ? 'jti' : 'txn']: `e${i}`, exp: 10 } as never);
    for (let i = 0; i < 1_000; i++) index.add({ kind: 'sub', sub: `s${i}`, before: 5, exp: i < 500 ? 10 : 1_000 });
    let turns = 0;
    const timer = setInterval(() => turns++, 1);
    const removed = await index.prune(100);
    clearInterval(timer);
    expect(removed).toBe(1_000_500);
    expect(index.size).toBe(500);
    expect(turns).toBeGreaterThan(0);
  });
});
