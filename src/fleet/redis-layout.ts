/**
 * The keys jitgate keeps in Redis (docs/fleet.md "Layout"), in one place so the gate, the CLI and
 * a broker's own client agree. With the default prefix `jitgate:`:
 *
 *   jitgate:revocations       sorted set. member = the entry's JSON (SPEC §5), score = its `exp`
 *                             (epoch s) or +inf. The live list: a gate loads it whole on start
 *                             and after every reconnect.
 *   jitgate:revocations:log   stream, field `entry` = the same JSON. The change log gates follow
 *                             with XREAD; trimmed to the last few seconds (a gate that falls
 *                             further behind resyncs from the sorted set).
 *   jitgate:revocations:epoch string, SET NX by the first gate to load the set: 16 random bytes.
 *                             Gone or changed means Redis lost its data (FLUSHALL, a restart
 *                             without persistence): every gate that sees it reloads and writes
 *                             back what it holds (redis-source.ts).
 *   jitgate:dpop:<jkt>:<h>    string, SET NX PX: a used DPoP proof; h = base64url(sha256(jti)).
 *                             Lives 2 × the fleet's dpop.iat_window + 5 s (redis-replay.ts).
 *   jitgate:dpop-window       sorted set, one member `ms` scored by the largest dpop.iat_window
 *                             (ms) of the gates with dpop.replay: redis on the prefix (ZADD GT).
 *   jitgate:dpop-nonce-key    string, SET NX once by the first gate with dpop.use_nonce: 32 random
 *                             bytes, base64url. Every gate on the prefix derives the same DPoP
 *                             nonces from it (src/core/dpop-nonce.ts), so a nonce one gate hands
 *                             out is accepted by all.
 *   jitgate:anomaly:<h>       sorted set, one member per refusal of one token (score = time in ms),
 *                             and jitgate:anomaly:<h>:tripped (SET NX PX): the fleet's refusal
 *                             count when anomaly and revocation.redis are on (redis-refusal-counter.ts);
 *                             h = base64url(sha256(iss + "\n" + jti)). Both expire with the window.
 *
 * A write is one MULTI/EXEC of ZADD + XADD per entry, so the set and the log never disagree.
 */

import { createHash } from 'node:crypto';
import type { RevocationEntry } from '../revocation/entries.ts';
import { entryToJson } from '../revocation/journal.ts';

export interface RedisKeys {
  readonly live: string;
  readonly log: string;
  readonly epoch: string;
  readonly dpopPrefix: string;
  readonly dpopWindow: string;
  readonly nonceKey: string;
  readonly anomalyPrefix: string;
}

export function redisKeys(prefix: string): RedisKeys {
  return { live: `${prefix}revocations`, log: `${prefix}revocations:log`, epoch: `${prefix}revocations:epoch`, dpopPrefix: `${prefix}dpop:`, dpopWindow: `${prefix}dpop-window`, nonceKey: `${prefix}dpop-nonce-key`, anomalyPrefix: `${prefix}anomaly:` };
}

/** The stream field that holds an entry. */
export const LOG_FIELD = 'entry';

/**
 * How long the change log keeps a record: longer than loading the live set takes, so records
 * written while a gate loads are still there when it reads on (a re-probe: with 5 s, a 9 s load of
 * 3.5 M entries lost them to the trim, and the reload that noticed it met the same trim, again and
 * again). An entry with `exp` is gone from the set at once and from the log within this.
 * A follower that did not read for FOLLOW_GAP_MS, or reads a full batch already that old, resyncs
 * from the sorted set instead of trusting the log (a margin below the retention, for clocks).
 */
export const LOG_RETENTION_MS = 30_000;
export const FOLLOW_GAP_MS = 20_000;

/** The entry as its Redis member: SPEC §5 JSON with a fixed key order (equal entries, equal members). */
export function encodeEntry(e: RevocationEntry): string {
  // The journal's line form already has a fixed key order.
  return entryToJson(e);
}

/** Sorted-set score: `exp`, so ZREMRANGEBYSCORE prunes by time; entries without one never go. */
export function scoreOf(e: RevocationEntry): string {
  return e.exp === undefined ? '+inf' : String(e.exp);
}

/** The DPoP key of one proof: per client key (jkt), jti hashed so any jti is a short, safe key. */
export function dpopKey(keys: RedisKeys, jkt: string, jti: string): string {
  return `${keys.dpopPrefix}${jkt}:${createHash('sha256').update(jti).digest('base64url')}`;
}

/** The refusal-count set of one token (`key`: issuer + "\n" + jti), its identity hashed so any jti is a short, safe key. */
export function anomalyKey(keys: RedisKeys, key: string): string {
  return `${keys.anomalyPrefix}${createHash('sha256').update(key).digest('base64url')}`;
}

/** The crossing flag beside a refusal-count set. */
export function anomalyTrippedKey(set: string): string {
  return `${set}:tripped`;
}

/** The milliseconds part of a stream id (`1764000000123-0`): when Redis logged the record. */
export function streamIdMs(id: string): number {
  const dash = id.indexOf('-');
  return Number(dash === -1 ? id : id.slice(0, dash));
}
