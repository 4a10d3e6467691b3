/**
 * How long a revocation entry outlives its `exp` (SPEC §5): a token is accepted until
 * `exp + clock_tolerance` of its issuer, so an entry pruned at `exp` would let the token it stops
 * back in for up to the tolerance — after a reload, a prune tick or a restart. Every source
 * (file, URL feed, admin journal and its compaction, cluster follower, and any shared-state source)
 * receives this one value as `retainMs` and prunes only past `exp + retainMs`.
 */
import type { Config } from '../config/schema.ts';

/** The largest `clock_tolerance` of any issuer, in ms: the one retention every source uses. */
export function revocationRetainMs(config: Pick<Config, 'issuers'>): number {
  let max = 0;
  for (const i of config.issuers) if (i.clock_tolerance > max) max = i.clock_tolerance;
  return max;
}

/** An entry with this `exp` (epoch s) still stops a token at `nowSec` when kept `retainMs` past it. */
export function isLive(exp: number | undefined, nowSec: number, retainMs: number): boolean {
  return exp === undefined || exp + retainMs / 1000 >= nowSec;
}
