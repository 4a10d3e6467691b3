/**
 * In-memory revocation index: O(1) lookups by jti, sub and txn. Keys come from tokens and feeds,
 * so they live in Maps, never plain objects (STYLE habit 12).
 */
import type { RevocationEntry } from './entries.ts';

/** One `sub` entry: tokens of the subject issued before `before` are revoked until `exp` (plus retention). */
interface Cutoff {
  readonly before: number;
  readonly exp: number;
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
  /** sub → its cut-offs, `before` descending and `exp` ascending; the first revokes the most. */
  readonly #sub = new Map<string, Cutoff[]>();

  constructor(entries: Iterable<RevocationEntry> = []) {
    for (const e of entries) this.add(e);
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
        if (cuts === undefined) this.#sub.set(e.sub, [{ before: e.before, exp }]);
        else addCutoff(cuts, e.before, exp);
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
      if (cuts !== undefined && iat < cuts[0]!.before) return true;
    }
    return false;
  }

  /**
   * Drops entries whose `exp` plus `retainMs` has passed: the tokens they revoke are then refused
   * as expired anyway. `retainMs` is the largest issuer clock tolerance (retention.ts).
   */
  prune(nowSec: number, retainMs = 0): number {
    const cutoff = nowSec - retainMs / 1000;
    let removed = 0;
    for (const map of [this.#jti, this.#txn]) {
      for (const [k, exp] of map) if (exp < cutoff) (map.delete(k), removed++);
    }
    for (const [k, cuts] of this.#sub) {
      const kept = cuts.filter((c) => c.exp >= cutoff);
      if (kept.length === cuts.length) continue;
      removed += cuts.length - kept.length;
      if (kept.length === 0) this.#sub.delete(k);
      else this.#sub.set(k, kept);
    }
    return removed;
  }

  /** The index as entries again (merged: one per jti and txn, a subject's cut-offs), e.g. to hand to another process. */
  *entries(): IterableIterator<RevocationEntry> {
    const expOf = (exp: number): number | undefined => (exp === Number.POSITIVE_INFINITY ? undefined : exp);
    for (const [jti, exp] of this.#jti) yield { kind: 'jti', jti, exp: expOf(exp) };
    for (const [txn, exp] of this.#txn) yield { kind: 'txn', txn, exp: expOf(exp) };
    for (const [sub, cuts] of this.#sub) for (const c of cuts) yield { kind: 'sub', sub, before: c.before, exp: expOf(c.exp) };
  }

  /** Entries whose exp is after `sec` (those without one included): what a store holding them all must hold at least. */
  countExpiringAfter(sec: number): number {
    let n = 0;
    for (const map of [this.#jti, this.#txn]) for (const exp of map.values()) if (exp > sec) n++;
    for (const cuts of this.#sub.values()) for (const c of cuts) if (c.exp > sec) n++;
    return n;
  }

  /** Entries held: one per jti and txn, one per cut-off of a subject. */
  get size(): number {
    let n = this.#jti.size + this.#txn.size;
    for (const cuts of this.#sub.values()) n += cuts.length;
    return n;
  }
}

/*
 * A subject's cut-offs are a frontier: `before` strictly descending and `exp` strictly ascending
 * (a cut-off that reaches no further and lasts no longer than another is dropped). So the ones
 * reaching at least as far as `before` are a prefix, whose longest-lasting is its last, and the
 * ones a new cut-off outreaches and outlasts are one run right after that prefix: an insert is two
 * binary searches and one splice (a re-probe: filtering and sorting on every add took 9 s for
 * 20,000 cut-offs of one subject, on the event loop).
 */

/** The number of cut-offs with `before` ≥ the given one (they come first). */
function reachingAtLeast(cuts: readonly Cutoff[], before: number): number {
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cuts[mid]!.before >= before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Some cut-off reaches at least as far and lasts at least as long. */
function dominated(cuts: readonly Cutoff[], before: number, exp: number): boolean {
  const i = reachingAtLeast(cuts, before);
  return i > 0 && cuts[i - 1]!.exp >= exp;
}

function addCutoff(cuts: Cutoff[], before: number, exp: number): void {
  if (dominated(cuts, before, exp)) return;
  // Those after the prefix reach less far (before < new before); of them, the first ones last no
  // longer than the new one (exp ascending): that run is outreached and outlasted, so it goes.
  const start = reachingAtLeast(cuts, before);
  // An equal `before` at start - 1 lasts less long (else the new one were dominated): it goes too.
  const from = start > 0 && cuts[start - 1]!.before === before ? start - 1 : start;
  let end = start;
  let hi = cuts.length;
  while (end < hi) {
    const mid = (end + hi) >>> 1;
    if (cuts[mid]!.exp <= exp) end = mid + 1;
    else hi = mid;
  }
  cuts.splice(from, end - from, { before, exp });
}
