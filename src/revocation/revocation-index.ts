/**
 * In-memory revocation index: O(1) lookups by jti, sub and txn. Keys come from tokens and feeds,
 * so they live in Maps, never plain objects (STYLE habit 12).
 */
import type { RevocationEntry } from './entries.ts';

/** Stored per key: the entry's `exp` (prune after), Infinity when it has none. */
export class RevocationIndex {
  readonly #jti = new Map<string, number>();
  readonly #txn = new Map<string, number>();
  /** sub → [before, exp]: tokens of sub issued before `before` are revoked. */
  readonly #sub = new Map<string, { before: number; exp: number }>();

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
        const old = this.#sub.get(e.sub);
        // The latest cut-off wins: it revokes everything an earlier one did.
        if (old === undefined || e.before >= old.before) this.#sub.set(e.sub, { before: e.before, exp: Math.max(exp, old?.exp ?? 0) });
        break;
      }
    }
  }

  /** True when this index already revokes everything `e` does (its exp aside). */
  covers(e: RevocationEntry): boolean {
    if (e.kind === 'jti') return this.#jti.has(e.jti);
    if (e.kind === 'txn') return this.#txn.has(e.txn);
    const s = this.#sub.get(e.sub);
    return s !== undefined && s.before >= e.before;
  }

  /** `iat` in epoch seconds. */
  isRevoked(jti: string, sub: string, iat: number, txn: string | undefined): boolean {
    if (this.#jti.size !== 0 && this.#jti.has(jti)) return true;
    if (txn !== undefined && this.#txn.size !== 0 && this.#txn.has(txn)) return true;
    if (this.#sub.size !== 0) {
      const s = this.#sub.get(sub);
      if (s !== undefined && iat < s.before) return true;
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
    for (const [k, v] of this.#sub) if (v.exp < cutoff) (this.#sub.delete(k), removed++);
    return removed;
  }

  /** The index as entries again (merged: one per jti, txn and sub), e.g. to hand to another process. */
  *entries(): IterableIterator<RevocationEntry> {
    const expOf = (exp: number): number | undefined => (exp === Number.POSITIVE_INFINITY ? undefined : exp);
    for (const [jti, exp] of this.#jti) yield { kind: 'jti', jti, exp: expOf(exp) };
    for (const [txn, exp] of this.#txn) yield { kind: 'txn', txn, exp: expOf(exp) };
    for (const [sub, v] of this.#sub) yield { kind: 'sub', sub, before: v.before, exp: expOf(v.exp) };
  }

  /** Entries whose exp is after `sec` (those without one included): what a store holding them all must hold at least. */
  countExpiringAfter(sec: number): number {
    let n = 0;
    for (const map of [this.#jti, this.#txn]) for (const exp of map.values()) if (exp > sec) n++;
    for (const v of this.#sub.values()) if (v.exp > sec) n++;
    return n;
  }

  get size(): number {
    return this.#jti.size + this.#txn.size + this.#sub.size;
  }
}
