/**
 * readSetPages (src/fleet/redis-set-pages.ts) against an in-memory sorted set that changes between
 * pages as Redis's would: every member present for the whole read is read, whatever is added,
 * deleted or moved around the read position; when every anchor moved, the read is refused.
 */
import { describe, expect, it } from 'vitest';
import { LOAD_PAGE, pageOf, readSetPages, scoreOf, SetMovedError, type Page } from '../../src/fleet/redis-set-pages.ts';

/** A sorted set: ordered by score, then member (bytewise, as Redis orders ties). */
class SortedSet {
  readonly #scores = new Map<string, number>();
  #order: string[] | undefined;

  add(member: string, score: number): void {
    this.#scores.set(member, score);
    this.#order = undefined;
  }

  remove(member: string): void {
    this.#scores.delete(member);
    this.#order = undefined;
  }

  score(member: string): number | undefined {
    return this.#scores.get(member);
  }

  /** Members from the top (highest first). */
  get fromTop(): string[] {
    this.#order ??= [...this.#scores.keys()].sort((a, b) => this.#scores.get(b)! - this.#scores.get(a)! || (a < b ? 1 : a > b ? -1 : 0));
    return this.#order;
  }

  /** ZRANGE key -(from+n) -(from+1) WITHSCORES: lowest first. */
  page(from: number, n: number): Page {
    const members = this.fromTop.slice(from, from + n).reverse();
    return { members, scores: members.map((m) => this.#scores.get(m)!) };
  }
}

const name = (i: number): string => `{"jti":"m-${String(i).padStart(6, '0')}"}`;

function setOf(n: number): SortedSet {
  const s = new SortedSet();
  for (let i = 0; i < n; i++) s.add(name(i), i % 3 === 0 ? Infinity : 1_800_000_000 + (i % 1000));
  return s;
}

/** Reads `set`, calling `change(pageNo)` between pages; returns the members read. */
async function read(set: SortedSet, change: (pageNo: number, readSoFar: Set<string>) => void): Promise<Set<string>> {
  const seen = new Set<string>();
  let pageNo = 0;
  await readSetPages(set.page(0, LOAD_PAGE), {
    page: async (from) => set.page(from, LOAD_PAGE),
    locate: async (members) => members.map((m) => (set.score(m) === undefined ? [null, null] : [set.fromTop.indexOf(m), set.score(m)!])),
    member: (m) => seen.add(m),
    between: async () => change(++pageNo, seen),
  });
  return seen;
}

const N = 5 * LOAD_PAGE;

describe('readSetPages', () => {
  it('reads every member of an unchanging set once per page overlap at most', async () => {
    const set = setOf(N);
    const seen = await read(set, () => {});
    expect(seen.size).toBe(N);
  });

  it('members added above the read position: every original one is read', async () => {
    const set = setOf(N);
    const seen = await read(set, (p) => {
      for (let i = 0; i < 700; i++) set.add(`{"jti":"new-${p}-${i}"}`, Infinity);
    });
    for (let i = 0; i < N; i++) expect(seen.has(name(i))).toBe(true);
  });

  it('500 members deleted above the read position after each page: every member never deleted is read', async () => {
    const set = setOf(N);
    const deleted = new Set<string>();
    const seen = await read(set, (_p, readSoFar) => {
      const victims = [...readSoFar].filter((m) => !deleted.has(m)).slice(0, 500);
      for (const m of victims) (set.remove(m), deleted.add(m));
    });
    for (let i = 0; i < N; i++) if (!deleted.has(name(i))) expect(seen.has(name(i)), name(i)).toBe(true);
    expect(deleted.size).toBeGreaterThan(1_000);
  });

  it('500 members moved from above the read position to the bottom: every member is read', async () => {
    const set = setOf(N);
    let low = 0;
    const seen = await read(set, (p, readSoFar) => {
      if (p > 2) return;
      for (const m of [...readSoFar].slice(0, 500)) set.add(m, 1_000_000_000 + low++);
    });
    for (let i = 0; i < N; i++) expect(seen.has(name(i)), name(i)).toBe(true);
  });

  it('when the last members read were all deleted, the read is refused (the load is done again)', async () => {
    const set = setOf(N);
    await expect(
      read(set, (p) => {
        if (p !== 1) return;
        // The second page was asked for before this change (pipelined): the third finds its anchors gone.
        for (const m of set.fromTop.slice(0, 2 * LOAD_PAGE)) set.remove(m);
      }),
    ).rejects.toBeInstanceOf(SetMovedError);
  });
});

describe('node-redis replies', () => {
  it('scores and pages in both RESP versions', () => {
    expect([scoreOf(Infinity), scoreOf('inf'), scoreOf('+inf'), scoreOf('-inf'), scoreOf('1.5'), scoreOf(null)]).toEqual([Infinity, Infinity, Infinity, -Infinity, 1.5, null]);
    const resp3 = pageOf([['a', 5], ['b', Infinity]]);
    const resp2 = pageOf(['a', '5', 'b', 'inf']);
    expect(resp3).toEqual({ members: ['a', 'b'], scores: [5, Infinity] });
    expect(resp2).toEqual(resp3);
    expect(pageOf([])).toEqual({ members: [], scores: [] });
  });
});
