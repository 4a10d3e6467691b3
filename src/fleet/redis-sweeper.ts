/**
 * Keeps Redis bounded (SPEC §9): every second, on Redis's own clock (TIME), removes live entries
 * whose `exp` plus the largest issuer clock_tolerance has passed (ZREMRANGEBYSCORE), trims the
 * change log to LOG_RETENTION_MS (XTRIM MINID) and deletes older records of such entries (XDEL).
 * Leaderless: every gate sweeps; every command is idempotent, so N gates sweeping cost N small
 * rounds a second and never disagree. They are sent
 * pipelined, not in a MULTI, so a Redis full under `noeviction` still accepts them.
 * DPoP keys need no sweep: they carry their own expiry.
 *
 * A record whose id lies in the future (XADD with an explicit id, a Redis clock that jumped) would
 * never fall below MINID, and every record after it inherits an id above it: the log would grow
 * for ever. A log whose newest id is more than FUTURE_TOLERANCE_MS ahead of Redis's clock is
 * deleted instead; every record in it is also in the live set, and each gate notices the log is
 * gone (redis-stream-ids.ts) and reloads the live set.
 */
import { parseEntryText } from '../revocation/entries.ts';
import { LOG_FIELD, LOG_RETENTION_MS, streamIdMs, type RedisKeys } from './redis-layout.ts';
import { isErrorReply, type RedisLink } from './redis-link.ts';

const SWEEP_EVERY_MS = 1_000;
/**
 * SPEC §9: an entry with `exp` is gone from Redis, change log included, within a few seconds of `exp`
 * plus tolerance. The age trim keeps a record LOG_RETENTION_MS, so a record whose entry expires sooner
 * is deleted by itself (XDEL) once it is EXPIRED_RECORD_AGE_MS old — by then every follower that keeps
 * up has read it; one that did not resyncs (redis-stream-ids.ts counts deleted records as trimmed).
 * Until 2026-12-07 night such records stayed up to 30 s past `exp` (a black-box probe).
 */
const EXPIRED_RECORD_AGE_MS = 3_000;
/** Records looked at per sweep, oldest first: a burst beyond this waits for the age trim. */
const EXPIRED_SCAN_COUNT = 2_000;
/** Far beyond any clock skew between Redis's own `*` ids and its TIME. */
export const FUTURE_TOLERANCE_MS = 60_000;

export class RedisSweeper {
  readonly #link: RedisLink;
  readonly #keys: RedisKeys;
  readonly #toleranceSec: number;
  readonly #onError: (err: Error) => void;
  readonly #onFuture: ((newestId: string) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** The Redis user may not XRANGE/XDEL (an ACL from before 2026-12-07 night): said once, then only the age trim. */
  #noExpiredScan = false;

  constructor(link: RedisLink, keys: RedisKeys, toleranceSec: number, onError: (err: Error) => void, onFuture?: (newestId: string) => void) {
    this.#link = link;
    this.#keys = keys;
    this.#toleranceSec = toleranceSec;
    this.#onError = onError;
    this.#onFuture = onFuture;
  }

  start(): void {
    // Jittered so a fleet started together does not sweep in lockstep.
    this.#timer = setInterval(() => void this.sweep(), SWEEP_EVERY_MS * (0.75 + Math.random() / 2));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One sweep; never rejects (failures are reported through onError). */
  async sweep(): Promise<void> {
    if (this.#running || this.#link.client === undefined) return;
    this.#running = true;
    try {
      // Two round trips (TIME, then the three commands pipelined), so twice the one-command deadline:
      // a Redis answering each command within command_timeout is not dropped as dead by its sweep,
      // which shares the connection with DPoP checks and revocation writes.
      await this.#link.run(
        'sweep',
        async (c) => {
          const [sec, usec] = await c.sendCommand<[string, string]>(['TIME']);
          const nowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
          const cutoffSec = Number(sec) - this.#toleranceSec; // an entry whose exp lies before this is gone
          // Not in a MULTI: each is idempotent, and Redis at maxmemory (noeviction) refuses a whole
          // MULTI holding writes, while it still runs these deletions on their own — the sweep is what
          // frees it again.
          const [, newest] = await Promise.all([
            c.sendCommand<number>(['ZREMRANGEBYSCORE', this.#keys.live, '-inf', `(${cutoffSec}`]),
            c.sendCommand<Array<[string, string[]]>>(['XREVRANGE', this.#keys.log, '+', '-', 'COUNT', '1']),
            c.sendCommand<number>(['XTRIM', this.#keys.log, 'MINID', String(nowMs - LOG_RETENTION_MS)]),
          ]);
          const newestId = newest[0]?.[0];
          if (newestId !== undefined && streamIdMs(newestId) > nowMs + FUTURE_TOLERANCE_MS) {
            await c.sendCommand(['DEL', this.#keys.log]);
            this.#onFuture?.(newestId);
            return;
          }
          if (this.#noExpiredScan) return;
          try {
            const old = await c.sendCommand<Array<[string, string[]]>>(['XRANGE', this.#keys.log, '-', String(nowMs - EXPIRED_RECORD_AGE_MS), 'COUNT', String(EXPIRED_SCAN_COUNT)]);
            const expired = expiredRecords(old, cutoffSec);
            if (expired.length > 0) await c.sendCommand(['XDEL', this.#keys.log, ...expired]);
          } catch (err) {
            if (!isErrorReply(err) || !(err as Error).message.startsWith('NOPERM')) throw err;
            this.#noExpiredScan = true;
            // Said here, not thrown: the link would take any other error for a lost connection and drop
            // the one revocation writes and DPoP checks share (a re-probe: six POSTs answered 503).
            this.#onError(new Error(`${(err as Error).message}; expired entries' log records now wait for the 30 s trim (grant +xrange +xdel, docs/fleet.md "ACL")`, { cause: err }));
          }
        },
        2 * this.#link.commandTimeoutMs,
      );
    } catch (err) {
      this.#onError(err as Error);
    } finally {
      this.#running = false;
    }
  }
}

/** Ids of log records whose entry's `exp` lies before `cutoffSec` (`exp` + tolerance has passed). */
function expiredRecords(records: ReadonlyArray<[string, string[]]>, cutoffSec: number): string[] {
  const ids: string[] = [];
  for (const [id, fields] of records) {
    const at = fields.indexOf(LOG_FIELD);
    const e = at >= 0 && at % 2 === 0 ? parseEntryText(fields[at + 1] ?? '') : undefined;
    if (typeof e === 'object' && e.exp !== undefined && e.exp < cutoffSec) ids.push(id);
  }
  return ids;
}
