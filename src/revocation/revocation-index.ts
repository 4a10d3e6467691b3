/**
 * In-memory revocation index: O(1) lookups by jti, sub and txn. Keys come from tokens and feeds,
 * so they live in Maps, never plain objects (STYLE habit 12).
 */
import type { RevocationEntry } from './entries.ts';
import { eachSliced } from './slices.ts';

/** One `sub` entry: tokens of the subject issued before `before` are revoked until `exp` (plus retention). */
interface Cutoff {
  readonly before: number;
  readonly exp: number;
  /** Made here by merging two (MAX_CUTOFFS), not written by anyone: never written back to a store. */
  readonly merged?: true;
}

/**
 * Stored per key: the entry's `exp` (prune after), Infinity when it has none. A subject keeps every
 * cut-off no other one outlasts and outreaches (before ≥ and exp ≥), latest `before` first: a later
 * cut-off with a short exp must not swallow an earlier one that never expires (a probe found the
 * earlier one dropped, and its tokens allowed again once the later one was pruned).
 */
export class RevocationIndex {
  readonly #jti = new Map<string, number>();
  readonly #txn = new Map<string, number>();
  /** sub → its cut-offs, `before` ascending and `exp` descending; the last revokes the most. */
  readonly #sub = new Map<string, Cutoff[]>();
  /** Cut-offs of all subjects together, kept as they change: `size` is read per scrape and reload. */
  #cutoffs = 0;

  constructor(entries: Iterable<RevocationEntry> = []) {
    for (const e of entries) this.add(e);
  }

  /** An index of `entries` built in slices (slices.ts), for reloads of large lists. */
  static async of(entries: Iterable<RevocationEntry>): Promise<RevocationIndex> {
    const index = new RevocationIndex();
    await eachSliced(entries, (e) => index.add(e));
    return index;
  }

  add(e: RevocationEntry): void {
    const exp = e.exp ?? Number.POSITIVE_INFINITY;
    switch (e.kind) {
      case 'jti':
        this.#jti.set(e.jti, Math.max(exp, this.#jti.get(e.jti) ?? 0));
        break;
      case 'txn':
        this.#txn.set(e.txn, Math.max(exp, this.#txn.get(e.txn) ?? 0));
        break;
      case 'sub': {
        const cuts = this.#sub.get(e.sub);
        if (cuts === undefined) {
          this.#sub.set(e.sub, [{ before: e.before, exp }]);
          this.#cutoffs++;
        } else {
          const had = cuts.length;
          addCutoff(cuts, e.before, exp);
          this.#cutoffs += cuts.length - had;
        }
        break;
      }
    }
  }

  /** True when this index already revokes everything `e` does, for at least as long. */
  covers(e: RevocationEntry): boolean {
    const exp = e.exp ?? Number.POSITIVE_INFINITY;
    if (e.kind === 'jti') return (this.#jti.get(e.jti) ?? -1) >= exp;
    if (e.kind === 'txn') return (this.#txn.get(e.txn) ?? -1) >= exp;
    const cuts = this.#sub.get(e.sub);
    return cuts !== undefined && dominated(cuts, e.before, exp);
  }

  /** `iat` in epoch seconds. */
  isRevoked(jti: string, sub: string, iat: number, txn: string | undefined): boolean {
    if (this.#jti.size !== 0 && this.#jti.has(jti)) return true;
    if (txn !== undefined && this.#txn.size !== 0 && this.#txn.has(txn)) return true;
    if (this.#sub.size !== 0) {
      const cuts = this.#sub.get(sub);
      if (cuts !== undefined && iat < cuts[cuts.length - 1]!.before) return true;
    }
    return false;
  }

  /**
   * Drops entries whose `exp` plus `retainMs` has passed: the tokens they revoke are then refused
   * as expired anyway. `retainMs` is the largest issuer clock tolerance (retention.ts). Walked in
   * slices (slices.ts): the periodic prune of a million entries held the event loop 14–80 ms.
   * Entries added meanwhile are visited or not; either is right (a new entry is not expired).
   */
  async prune(nowSec: number, retainMs = 0): Promise<number> {
    const cutoff = nowSec - retainMs / 1000;
    let removed = 0;
    for (const map of [this.#jti, this.#txn]) {
      await eachSliced(map, ([k, exp]) => {
        if (exp < cutoff) (map.delete(k), removed++);
      });
    }
    await eachSliced(this.#sub, ([k, cuts]) => {
      // `exp` descends along a subject's cut-offs, so the expired ones are the last: one look when none is.
      if (cuts[cuts.length - 1]!.exp >= cutoff) return;
      let keep = cuts.length - 1;
      while (keep > 0 && cuts[keep - 1]!.exp < cutoff) keep--;
      removed += cuts.length - keep;
      this.#cutoffs -= cuts.length - keep;
      if (keep === 0) this.#sub.delete(k);
      else cuts.length = keep;
    });
    return removed;
  }

  /**
   * The index as entries again (one per jti and txn, a subject's cut-offs), e.g. to hand to another
   * process. `withMerged` false leaves out the cut-offs this index made by merging (MAX_CUTOFFS),
   * which no one wrote: what may be written back to a store (a re-probe saw them reported missing
   * from Redis and written there as revocations nobody issued).
   */
  *entries(withMerged = true): IterableIterator<RevocationEntry> {
    const expOf = (exp: number): number | undefined => (exp === Number.POSITIVE_INFINITY ? undefined : exp);
    for (const [jti, exp] of this.#jti) yield { kind: 'jti', jti, exp: expOf(exp) };
    for (const [txn, exp] of this.#txn) yield { kind: 'txn', txn, exp: expOf(exp) };
    for (const [sub, cuts] of this.#sub) for (const c of cuts) if (withMerged || c.merged !== true) yield { kind: 'sub', sub, before: c.before, exp: expOf(c.exp) };
  }

  /**
   * Entries whose exp is after `sec` (those without one included): what a store holding them all
   * must hold at least. In slices, as `prune` (8–15 ms per million entries in one go).
   */
  async countExpiringAfter(sec: number): Promise<number> {
    let n = 0;
    for (const map of [this.#jti, this.#txn]) {
      await eachSliced(map.values(), (exp) => {
        if (exp > sec) n++;
      });
    }
    await eachSliced(this.#sub.values(), (cuts) => {
      for (const c of cuts) if (c.exp > sec) n++;
    });
    return n;
  }

  /** Entries held: one per jti and txn, one per cut-off of a subject. */
  get size(): number {
    return this.#jti.size + this.#txn.size + this.#cutoffs;
  }
}

/*
 * A subject's cut-offs are a frontier: `before` strictly ascending and `exp` strictly descending
 * (a cut-off that reaches no further and lasts no longer than another is dropped). So the ones
 * reaching at least as far as a new one are a suffix, whose longest-lasting is its first, and the
 * ones it outreaches and outlasts are one run just before that suffix: an insert is two binary
 * searches and one splice — at the end for cut-offs arriving in time order, the usual order (a
 * re-probe: filtering and sorting on every add took 9 s for 20,000 cut-offs of one subject, and a
 * frontier kept the other way round spliced at its front every time, 8 s for 100,000).
 *
 * At most MAX_CUTOFFS per subject: past it the two earliest are merged into one that outreaches and
 * outlasts both (the later `before`, the longer `exp`), which revokes a little more for a little
 * longer — never less — and keeps any order of arrival from costing more than a bounded splice.
 */
const MAX_CUTOFFS = 1024;

/** The number of cut-offs with `before` < the given one (they come first). */
function reachingLess(cuts: readonly Cutoff[], before: number): number {
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cuts[mid]!.before < before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Some cut-off reaches at least as far and lasts at least as long. */
function dominated(cuts: readonly Cutoff[], before: number, exp: number): boolean {
  const i = reachingLess(cuts, before);
  return i < cuts.length && cuts[i]!.exp >= exp;
}

function addCutoff(cuts: Cutoff[], before: number, exp: number): void {
  if (dominated(cuts, before, exp)) return;
  // Before the suffix that reaches as far: the cut-offs reaching less far; of them, the last ones
  // last no longer than the new one (exp descending): that run is outreached and outlasted.
  const end = reachingLess(cuts, before);
  // An equal `before` at `end` lasts less long (else the new one were dominated): it goes too.
  const to = end < cuts.length && cuts[end]!.before === before ? end + 1 : end;
  let start = 0;
  let hi = end;
  while (start < hi) {
    const mid = (start + hi) >>> 1;
    if (cuts[mid]!.exp > exp) start = mid + 1;
    else hi = mid;
  }
  if (start === cuts.length) cuts.push({ before, exp });
  else cuts.splice(start, to - start, { before, exp });
  if (cuts.length > MAX_CUTOFFS) cuts.splice(0, 2, { before: cuts[1]!.before, exp: cuts[0]!.exp, merged: true });
}
