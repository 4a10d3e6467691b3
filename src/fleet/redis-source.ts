/**
 * Revocation entries shared through Redis (SPEC §9, `revocation.redis: true`), as a RevocationSource.
 *
 * On a new connection (the first, and a reconnect that cannot follow on from where it stood, or owes
 * a load) the source resyncs: it reads the change log's last id, then the whole live set in pieces
 * (ZSCAN, redis-set-scan.ts), reading the log meanwhile, so nothing written meanwhile is missed and
 * it is enforced at once; the new index is swapped in whole, with the list the gate had answering
 * until then. Then it follows the log with
 * `XREAD BLOCK 1000` from that id on a connection of its own, applying each record as it comes.
 * Pub/sub would lose what is published while a gate is away; the log plus a resync loses nothing.
 * The log is trimmed to 30 s (src/fleet/redis-sweeper.ts), so a follower that did not
 * read for FOLLOW_GAP_MS resyncs instead of trusting it.
 *
 * XREAD only asks for ids above the last one read, so a log deleted or recreated with lower ids (a
 * restore, a failover, `DEL`) would be followed forever without a record coming back: at least once
 * a second XINFO STREAM is compared with what the follower has read (redis-stream-ids.ts), and a
 * log that went backwards is a reason to resync, and every few seconds the live set is counted
 * against what the gate holds (a FLUSHALL followed by new writes leaves a log that looks fine but a
 * set that lost entries). A resync never forgets an entry the gate holds:
 * what Redis no longer has (a Redis restarted empty) is kept until its `exp`, reported, and written
 * back to the live set so the gates heal Redis (SPEC §5: a reload that finds no entries where
 * entries existed keeps them). Redis has no un-revoke, so nothing is lost by keeping them.
 *
 * `lastSyncAt` is the moment of the last read Redis answered (the data is at least that fresh);
 * past `max_stale` without one the gate fails closed (503 revocation_stale) like the URL feed, and
 * recovers by itself. Error replies (WRONGTYPE on a key someone else wrote) are failures too: they
 * never empty or shorten the list. Malformed members or records (a broker's typo) are skipped and
 * reported; a live set holding only malformed members keeps the previous index (SPEC §5) and gets
 * it written back.
 */
import { randomBytes } from 'node:crypto';
import { REDIS_FOLLOW_BLOCK_MS } from '../config/schema.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { parseEntryText, type LineError, type RevocationEntry } from '../revocation/entries.ts';
import { RevocationIndex } from '../revocation/revocation-index.ts';
import { eachSliced } from '../revocation/slices.ts';
import { SCAN_COUNT, scanPageOf, scanSet, type ScanPage } from './redis-set-scan.ts';
import { StallGuard } from './stall-guard.ts';
import type { RevocationSource } from '../revocation/revocation-list.ts';
import { FOLLOW_GAP_MS, LOG_FIELD, LOG_RETENTION_MS, streamIdMs, type RedisKeys } from './redis-layout.ts';
import { redactUrl } from '../observability/redact-url.ts';
import { isErrorReply, plainReply, RedisLink, withDeadline, type RedisClient, type RedisConnectOptions } from './redis-link.ts';
import { compareIds, parseStreamInfo, resetReason, trimmedUnread, type FollowPosition, type StreamInfo } from './redis-stream-ids.ts';
import { restoreLive } from './redis-writer.ts';

const BLOCK_MS = REDIS_FOLLOW_BLOCK_MS;
const READ_COUNT = 1_000;
const PRUNE_EVERY_MS = 5_000;
/** After an error reply, ask again this much later (the connection itself is fine). */
const ERROR_RETRY_MS = 1_000;
/** A write-back may be large (docs/fleet.md "Sizing"): at least this long before it counts as lost. */
const RESYNC_TIMEOUT_MS = 30_000;
/** One page of the load: at least this long before it counts as lost. */
const PAGE_TIMEOUT_MS = 5_000;
/** During a load, the log is read this often, so revocations written meanwhile are enforced at once. */
const CATCH_UP_MS = 250;
/** Reads of the log in one pause of a load, at most (READ_COUNT each). */
const CATCH_UP_READS = 10;
/** A long load reports how far it got this often. */
const PROGRESS_MS = 5_000;
/** How often the live set is counted against what this gate holds (lossReason). */
const LOSS_CHECK_MS = 5_000;
/**
 * Entries expiring within this much of now are left out of that count: the sweeper deletes by Redis's
 * clock, the gate prunes by its own, and the two may differ by a few seconds.
 */
const LOSS_SLACK_S = 30;

/** Entries a load found missing from Redis (RedisRevocationSource.#loss). */
interface Loss {
  readonly count: number;
  readonly atMs: number;
  /** Why the write-back failed (the /readyz problem says it), until one succeeds. */
  error?: string;
  /** What Redis refused to take back (an error reply), offered again at each loss check. */
  unwritten?: RevocationEntry[];
  writtenBackAtMs?: number;
}

export interface ResyncInfo {
  readonly source: string;
  readonly result: 'ok' | 'error';
  readonly entries: number;
  /** Entries the live set held (the rest of `entries` were held by the gate and kept). */
  readonly inRedis: number;
  /** Entries this gate held before the load (unexpired). */
  readonly held: number;
  /** Entries this gate held that the live set did not have, kept; written back unless `restoreError`. */
  readonly missing: number;
  readonly restoreError?: Error;
  readonly durationMs: number;
  readonly lineErrors: readonly LineError[];
  readonly error?: Error;
}

export interface RedisSourceEvents {
  resync?(i: ResyncInfo): void;
  /** Records applied from the log; delayMs from the newest record's stream id to now. */
  applied?(records: number, delayMs: number, lineErrors: readonly LineError[]): void;
  /** The Redis user may not ZSCAN (an ACL from before +zscan): this load reads the whole set in one ZRANGE. */
  scanRefused?(): void;
  /** A load still under way: members read so far. */
  loading?(p: { readonly source: string; readonly read: number; readonly durationMs: number }): void;
  /** Every answered read: the sync age is now 0. */
  followed?(): void;
  /** The log went backwards or vanished: a resync follows. */
  reset?(why: string): void;
  /** Entries Redis refused to take back at a load, taken by a later try (retried every LOSS_CHECK_MS). */
  writtenBack?(i: { readonly source: string; readonly entries: number }): void;
  /** A count found Redis holding every entry this gate holds again: the missing-entries problem is cleared. */
  lossHealed?(source: string): void;
  /** This process stood still for `ms` (stall-guard.ts): decisions fail closed until the follower reads past it. */
  stalled?(ms: number): void;
  error?(op: 'connect' | 'resync' | 'follow', err: Error): void;
  state?(connected: boolean, err?: Error): void;
}

export interface RedisSourceOptions extends RedisConnectOptions {
  readonly keys: RedisKeys;
  readonly prefix: string;
  readonly maxStaleMs: number;
  /** The largest clock_tolerance of any issuer: entries count until exp + this (SPEC §5). */
  readonly toleranceSec: number;
  readonly clock?: Clock;
  readonly events?: RedisSourceEvents;
}

type StreamRecord = [id: string, fields: string[]];

/** A load's reads of the log found records trimmed before they were read: it is done again. */
class LoadGapError extends Error {}

/** A load under way: the list being built, and where in the log it has read to. */
interface Loading {
  readonly index: RevocationIndex;
  lastId: string;
  /** Log records read since the load's XINFO (the follower's readSinceLoad once it is swapped in). */
  read: number;
}
/** RESP2 gives `[[key, records]]`; RESP3 (a map) comes out of node-redis as `{ key: records }`. */
type XReadReply = [string, StreamRecord[]][] | Record<string, StreamRecord[]> | null;

function recordsOf(reply: NonNullable<XReadReply>, key: string): StreamRecord[] {
  if (Array.isArray(reply)) return reply.find((r) => r[0] === key)?.[1] ?? [];
  return reply[key] ?? [];
}

export class RedisRevocationSource implements RevocationSource {
  readonly name: string;
  readonly maxStaleMs: number;
  readonly #o: RedisSourceOptions;
  readonly #clock: Clock;
  readonly #link: RedisLink;
  #index = new RevocationIndex();
  /** Set while a load is under way: entries this gate learns meanwhile go into both lists. */
  #loading: Loading | undefined;
  #lastSyncAt: number | undefined;
  #lastId = '0-0';
  /** XINFO's entries-added at the last check since the last resync. */
  #seenAdded: number | undefined;
  /** The log's entries-added when the live set was last loaded, and records read since (trimmedUnread). */
  #addedAtLoad: number | undefined;
  #readSinceLoad = 0;
  /** The session counter: a session whose number is no longer this one stops. */
  #sessionNo = 0;
  /** The value of the fleet's data marker at the last load (keys.epoch), when Redis let it be read. */
  #marker: string | undefined;
  /**
   * What a load found missing from Redis, kept until a count finds Redis holding every entry again (the
   * /readyz problem). `unwritten`: the entries Redis refused to take back (an error reply: maxmemory, a
   * read-only replica), offered again at each loss check, writes only, in place of the count and reload
   * (which would reload every 5 s to no end); until 2026-12-08 the check rested 60 s instead, and a gate
   * started meanwhile, after Redis took writes again, answered 200 for them for up to a minute (a probe).
   */
  #loss: Loss | undefined;
  /**
   * Set when a load is called for or starts, and while a read's records are applied before the check
   * for a gap before them has answered; cleared when a load is swapped in or the check finds no gap.
   * A new connection with a load owed loads instead of following on: the log's position has moved
   * past what called for it (records read after a trimmed gap), so the follow-on check would find
   * nothing wrong (re-probes: a load cut by a lost connection, and a gap check lost with its
   * connection, left trimmed revocations unenforced for as long as the log kept being written to).
   */
  #loadOwed = false;
  #stopped = false;
  #prune: NodeJS.Timeout | undefined;
  #firstSync: (() => void) | undefined;
  /** A frozen process is behind until a read sent after the freeze answers (stall-guard.ts). */
  readonly #stall = new StallGuard({ onStall: (ms) => this.#o.events?.stalled?.(ms) });

  constructor(options: RedisSourceOptions) {
    this.name = `redis:${redactUrl(options.url)}#${options.prefix}`;
    this.maxStaleMs = options.maxStaleMs;
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#link = new RedisLink({
      ...options,
      name: 'jitgate-revocation-follower',
      onReady: (c) => void this.#session(c),
      onState: (connected, err) => {
        options.events?.state?.(connected, err);
        if (!connected && err) options.events?.error?.('connect', err);
      },
    });
  }

  get index(): RevocationIndex {
    return this.#index;
  }

  get lastSyncAt(): number | undefined {
    return this.#lastSyncAt;
  }

  /** RevocationSource.behind: the process stood still since the last answered read (stall-guard.ts). */
  get behind(): boolean {
    return this.#stall.behind;
  }

  /** Set while the last load found entries missing from Redis (shown in /readyz; the gate stays ready). */
  get problem(): string | undefined {
    const l = this.#loss;
    if (l === undefined) return undefined;
    const back = l.error !== undefined ? `, not written back (${l.error})` : l.writtenBackAtMs !== undefined ? `, written back at ${new Date(l.writtenBackAtMs).toISOString()}` : ' and written back';
    return `redis ${this.name}: ${l.count} entries this gate holds were missing from Redis at the load of ${new Date(l.atMs).toISOString()}; kept${back}`;
  }

  /**
   * Entries this gate's own write just made Redis acknowledge: enforced now, not when the follower
   * reads them back, so a 201 is honoured here whatever happened to the log.
   */
  applyOwn(entries: readonly RevocationEntry[]): void {
    for (const e of entries) {
      this.#index.add(e);
      this.#loading?.index.add(e);
    }
  }

  /**
   * Connects (a StartupError names the key at fault) and waits for the first resync, loaded or
   * failed. Redis unreachable: returns at once, never synced (so every decision answers 503
   * revocation_stale and /readyz names this source), and loads when the link reaches Redis.
   */
  async start(): Promise<void> {
    this.#stopped = false;
    const first = new Promise<void>((resolve) => (this.#firstSync = resolve));
    // Unreachable: already reported through the link's state (events.error 'connect').
    // stop() resolves `first`, so a start whose gate stopped meanwhile does not wait here.
    if ((await this.#link.connect()) === undefined) await first;
    // Stopped while starting (a start-up that failed elsewhere): no timers for a source nobody reads.
    if (this.#stopped) return;
    this.#prune = setInterval(() => void this.#index.prune(this.#clock.nowMs() / 1000 - this.#o.toleranceSec), PRUNE_EVERY_MS);
    this.#prune.unref();
    this.#stall.start();
  }

  stop(): void {
    this.#stopped = true;
    // A start still waiting for its first load (stopped because the gate's start failed elsewhere) returns.
    this.#firstSync?.();
    this.#firstSync = undefined;
    this.#sessionNo++;
    if (this.#prune !== undefined) clearInterval(this.#prune);
    this.#stall.stop();
    this.#link.stop();
  }

  /** One connection's life: resync, then follow until something fails. */
  async #session(client: RedisClient): Promise<void> {
    const session = ++this.#sessionNo;
    const live = (): boolean => session === this.#sessionNo && !this.#stopped;
    let needResync = true;
    // A new connection after one that had loaded: follow on from the last id read when the log still
    // holds everything after it (30 s of it), instead of reloading the whole set — a reload of a large
    // set takes seconds, during which the old list answers (a re-probe: a 7 s pause cost a 17 s reload).
    let resumed = !this.#loadOwed && this.#addedAtLoad !== undefined && this.#lastId !== '0-0';
    let lastReadAt = 0;
    let checkedAt = 0;
    let lossCheckedAt = performance.now();
    while (live()) {
      try {
        if (resumed) {
          resumed = false;
          if ((await this.#cannotFollowOn(client)) === undefined) {
            needResync = false;
            lastReadAt = performance.now();
          }
        }
        if (needResync || performance.now() - lastReadAt > FOLLOW_GAP_MS) {
          await this.#resync(client, live);
          needResync = false;
        }
        const askedAt = this.#clock.nowMs();
        const askedAtMono = performance.now();
        const reply = await withDeadline(
          client.sendCommand<XReadReply>(['XREAD', 'COUNT', String(READ_COUNT), 'BLOCK', String(BLOCK_MS), 'STREAMS', this.#o.keys.log, this.#lastId]),
          BLOCK_MS + this.#o.commandTimeoutMs,
          'XREAD',
        );
        if (!live()) return;
        lastReadAt = performance.now();
        // A full batch: more records wait behind it, so this read is not past anything yet.
        let full = false;
        if (reply !== null) {
          const records = recordsOf(reply, this.#o.keys.log);
          full = records.length >= READ_COUNT;
          const readFrom = this.#position(); // the gap check counts from where this read started
          // The position moves past any gap now; until the check below says there is none, a load is
          // owed (a re-probe: a check lost with its connection left a gap no later check could see).
          this.#loadOwed = true;
          this.#apply(records);
          // XREAD skips silently over records the sweepers trimmed (to LOG_RETENTION_MS) before this
          // gate read them: after a long reload, or while behind a burst (re-probes lost revocations
          // both ways). A deleted id above where this read started means a gap: resync from the
          // sorted set, which keeps them. A full batch already FOLLOW_GAP_MS old means one is coming.
          const behind = full ? this.#clock.nowMs() - streamIdMs(this.#lastId) : 0;
          const gap = behind > FOLLOW_GAP_MS ? `this gate is ${behind} ms behind the change log, which is trimmed to ${LOG_RETENTION_MS} ms` : await this.#trimmedSince(client, readFrom);
          if (!live()) return;
          if (gap !== undefined) {
            this.#o.events?.reset?.(gap);
            needResync = true;
            continue;
          }
          this.#loadOwed = false;
        }
        // An empty answer is also what a log reset looks like; a busy log is checked once a second too.
        if (reply === null || lastReadAt - checkedAt >= BLOCK_MS) {
          checkedAt = lastReadAt;
          let why = await this.#resetReason(client);
          if (why === undefined && lastReadAt - lossCheckedAt >= LOSS_CHECK_MS) {
            lossCheckedAt = lastReadAt;
            if (this.#loss?.unwritten !== undefined) await this.#writeBackAgain(client, this.#loss, this.#loss.unwritten);
            else why = await this.#lossReason(client);
          }
          if (!live()) return;
          if (why !== undefined) {
            this.#o.events?.reset?.(why);
            this.#loadOwed = true;
            needResync = true;
            continue;
          }
        }
        // An empty answer came after Redis blocked BLOCK_MS from receiving the read (at or after
        // askedAt): nothing was logged until at least askedAt + BLOCK_MS. Records: fresh as of askedAt.
        this.#lastSyncAt = reply === null ? askedAt + BLOCK_MS : askedAt;
        // Past a stall only once a read reaches the end of the log: a full batch cleared it, and a gate
        // that woke to more than READ_COUNT records answered from a list lacking the later ones (a review).
        if (!full) this.#stall.synced(askedAtMono);
        this.#o.events?.followed?.();
      } catch (caught) {
        const err = plainReply(caught);
        if (!live()) return;
        this.#o.events?.error?.(needResync ? 'resync' : 'follow', err as Error);
        this.#firstSync?.();
        this.#firstSync = undefined;
        // An error reply, or a load whose reads of the log found a gap: the connection is fine, load again.
        if (!isErrorReply(err) && !(err instanceof LoadGapError)) {
          this.#link.fail(client, err as Error); // reconnects; the next session resyncs
          return;
        }
        needResync = true;
        await new Promise((r) => setTimeout(r, ERROR_RETRY_MS).unref());
      }
    }
  }

  async #resync(client: RedisClient, live: () => boolean): Promise<void> {
    const started = performance.now();
    const askedAt = this.#clock.nowMs();
    const { keys } = this.#o;
    const lineErrors: LineError[] = [];
    const cutoff = askedAt / 1000 - this.#o.toleranceSec;
    const index = new RevocationIndex();
    let restoreError: Error | undefined;
    let inRedis = 0;
    let heldCount = 0;
    let missing: RevocationEntry[] = [];
    const load: Loading = { index, lastId: '0-0', read: 0 };
    this.#loading = load;
    this.#loadOwed = true;
    try {
      // The log's state (last id, records ever added), then the set, on one connection (Redis runs
      // them in that order): an entry written after the XINFO is in the log after that id and read
      // from there, applied twice at worst, never missed; and the count lets the follower tell a
      // trimmed gap from a quiet log (trimmedUnread). Not a MULTI: Redis at maxmemory under
      // noeviction refuses a MULTI even of reads, and every gate would then stop syncing.
      const pageTimeout = Math.max(PAGE_TIMEOUT_MS, this.#o.commandTimeoutMs);
      const scan = async (cursor: string): Promise<ScanPage> => scanPageOf(await withDeadline(client.sendCommand(['ZSCAN', keys.live, cursor, 'COUNT', String(SCAN_COUNT)]), pageTimeout, 'ZSCAN'));
      // A user without +zscan (the ACL before 2026-12-06 night): the whole set in one ZRANGE, as before.
      const noScan = (caught: unknown): null => {
        if (isErrorReply(caught) && /NOPERM/i.test((caught as Error).message)) return null;
        throw caught;
      };
      const [log, scanned] = await Promise.all([this.#logInfo(client, pageTimeout), scan('0').catch(noScan)]);
      load.lastId = log?.lastGeneratedId ?? '0-0';
      let first = scanned;
      if (first === null) {
        this.#o.events?.scanRefused?.();
        const all = await withDeadline(client.sendCommand(['ZRANGE', keys.live, '0', '-1']), Math.max(RESYNC_TIMEOUT_MS, this.#o.commandTimeoutMs), 'ZRANGE');
        first = { cursor: '0', members: (all as unknown as unknown[]).map(String) };
      }
      // Read in pieces with the event loop free between them (redis-set-scan.ts); meanwhile the log
      // is read, so what is revoked during a long load is enforced at once.
      const reported = new Set<string>();
      let position = 0;
      let reportedAt = performance.now();
      const between = this.#between(client, load, live, pageTimeout, log === undefined ? 0 : log.entriesAdded);
      await scanSet(first, {
        scan,
        member: (m) => {
          position++;
          const e = parseEntryText(m);
          if (typeof e !== 'string') {
            if (e.exp === undefined || e.exp >= cutoff) index.add(e);
          } else if (!reported.has(m)) {
            reported.add(m);
            lineErrors.push({ line: position, message: `member ${excerpt(m)}: ${e}` });
          }
        },
        between: async (read) => {
          await between();
          const now = performance.now();
          if (now - reportedAt >= PROGRESS_MS) {
            reportedAt = now;
            this.#o.events?.loading?.({ source: this.name, read, durationMs: now - started });
          }
        },
      });
      inRedis = index.size;
      // Only malformed members means no revocation is in Redis: what this gate holds is kept and
      // written back below (it used to throw, and the reconnect that followed met the same member: a
      // loop that left every gate unready); the members are reported as line errors.
      // Redis lost what this gate holds (restarted empty, restored from an old copy, DEL): keep it.
      ({ missing, held: heldCount } = await keepHeld(index, this.#index, cutoff, between));
      // A newer connection's load (or stop) took over while this one was under way: it swaps, not this.
      if (!live()) throw new Error('load superseded');
      this.#index = index;
      this.#loading = undefined;
      this.#loadOwed = false;
      this.#lastId = load.lastId;
      // A log deleted and recreated during the load shows as entries-added going back from here.
      this.#seenAdded = log?.entriesAdded;
      // No log yet: one created later counts its records from 0.
      this.#addedAtLoad = log === undefined ? 0 : log.entriesAdded;
      this.#readSinceLoad = load.read;
      this.#lastSyncAt = askedAt;
      this.#stall.synced(started);
      if (missing.length > 0) {
        try {
          await this.#restore(client, missing);
        } catch (caught) {
          restoreError = plainReply(caught) as Error;
        }
        this.#loss = { count: missing.length, atMs: askedAt, error: restoreError?.message, unwritten: restoreError !== undefined && isErrorReply(restoreError) ? missing : undefined };
      } else this.#loss = undefined;
      this.#o.events?.resync?.({ source: this.name, result: 'ok', entries: index.size, inRedis, held: heldCount, missing: missing.length, restoreError, durationMs: performance.now() - started, lineErrors });
    } catch (caught) {
      if (this.#loading === load) this.#loading = undefined;
      const err = plainReply(caught);
      if (!live()) throw err;
      this.#o.events?.resync?.({ source: this.name, result: 'error', entries: this.#index.size, inRedis: 0, held: this.#index.size, missing: 0, durationMs: performance.now() - started, lineErrors, error: err as Error });
      throw err;
    }
    // The load stands, but a connection that timed out on the write-back cannot be trusted to follow.
    if (restoreError !== undefined && !isErrorReply(restoreError)) throw restoreError;
    await this.#markEpoch(client);
    this.#firstSync?.();
    this.#firstSync = undefined;
  }

  /**
   * What a load does between its slices: at once, then every CATCH_UP_MS, one read of the log (no
   * BLOCK), applied to the list being enforced and the one being loaded; and it stops a load another
   * one superseded. It reads from where the enforced list stands when the log still runs on from
   * there (a re-probe: records logged between two failed loads were never applied, each load reading
   * only from its own XINFO), so both the follower's position and the load's move on.
   */
  #between(client: RedisClient, load: Loading, live: () => boolean, timeoutMs: number, addedAtLoad: number | undefined): () => Promise<void> {
    const loadStart = load.lastId;
    let caughtUpAt = -Infinity;
    return async () => {
      if (!live()) throw new Error('load superseded');
      if (performance.now() - caughtUpAt < CATCH_UP_MS) return;
      const before: FollowPosition = { lastId: load.lastId, addedAtLoad, readSinceLoad: load.read };
      // Until caught up (a few reads at most), so a burst during a long load does not leave it behind.
      for (let round = 0; round < CATCH_UP_READS; round++) {
        const enforcedAt = this.#lastId;
        const from = compareIds(enforcedAt, loadStart) <= 0 && compareIds(enforcedAt, load.lastId) < 0 ? enforcedAt : load.lastId;
        // The same deadline as a page: on the same connection, it may wait behind one.
        const reply = await withDeadline(client.sendCommand<XReadReply>(['XREAD', 'COUNT', String(READ_COUNT), 'STREAMS', this.#o.keys.log, from]), timeoutMs, 'XREAD');
        if (!live()) throw new Error('load superseded');
        const records = reply === null ? [] : recordsOf(reply, this.#o.keys.log);
        for (const [id] of records) {
          if (from === enforcedAt && compareIds(id, this.#lastId) > 0) {
            this.#lastId = id;
            this.#readSinceLoad++;
          }
          if (compareIds(id, load.lastId) > 0) {
            load.lastId = id;
            load.read++;
          }
        }
        this.#applyRecords(records, load.index);
        if (records.length < READ_COUNT) break;
      }
      caughtUpAt = performance.now();
      // The follower's own check, for the load's reads: records trimmed before they were read are
      // gone from the log, and ZSCAN need not return members added during it (a re-probe's reading:
      // reads that fell 30 s behind in a long load under a burst would skip them unnoticed).
      const info = await this.#logInfo(client, timeoutMs);
      const gap = info === undefined ? undefined : trimmedUnread(info, before);
      if (gap !== undefined) throw new LoadGapError(`${gap}, during the load`);
    };
  }

  /**
   * Offers Redis the entries it refused to take back. An error reply again leaves them for the next check;
   * no answer in time drops the connection (as at a load), and the next load tries again.
   */
  async #writeBackAgain(client: RedisClient, loss: Loss, unwritten: readonly RevocationEntry[]): Promise<void> {
    const cutoff = this.#clock.nowMs() / 1000 - this.#o.toleranceSec;
    const entries = unwritten.filter((e) => e.exp === undefined || e.exp >= cutoff);
    try {
      if (entries.length > 0) await this.#restore(client, entries);
    } catch (caught) {
      const err = plainReply(caught);
      if (!isErrorReply(err)) throw err;
      loss.unwritten = entries;
      return;
    }
    loss.unwritten = undefined;
    loss.error = undefined;
    loss.writtenBackAtMs = this.#clock.nowMs();
    this.#o.events?.writtenBack?.({ source: this.name, entries: entries.length });
  }

  /** Puts entries this gate holds back into the live set and the log (redis-writer.ts), with a load's deadline. */
  #restore(client: RedisClient, entries: readonly RevocationEntry[]): Promise<number> {
    return withDeadline(restoreLive(client, this.#o.keys, entries), Math.max(RESYNC_TIMEOUT_MS, this.#o.commandTimeoutMs), 'write back');
  }

  /** The missing-entries problem ends when a count finds Redis holding what this gate holds (it stayed up for good while following worked: a probe). */
  #healed(): void {
    if (this.#loss === undefined || this.#loss.unwritten !== undefined) return;
    this.#loss = undefined;
    this.#o.events?.lossHealed?.(this.name);
  }

  /**
   * Why the live set holds fewer entries than this gate (FLUSHALL, a restart without persistence,
   * `DEL`, a FLUSHALL followed by new writes), or undefined. The log check above misses these when
   * the log was recreated to look the same; counting does not: the gate then resyncs, which writes
   * back what it holds, so a gate started afterwards finds the entries again. Entries close to their
   * exp are not counted (LOSS_SLACK_S); one ZCOUNT every LOSS_CHECK_MS.
   */
  async #lossReason(client: RedisClient): Promise<string | undefined> {
    const floor = Math.floor(this.#clock.nowMs() / 1000) - this.#o.toleranceSec + LOSS_SLACK_S;
    const held = await this.#index.countExpiringAfter(floor);
    if (held === 0) {
      this.#healed();
      return undefined;
    }
    const { keys } = this.#o;
    let inRedis: number;
    try {
      const [count, epoch] = await withDeadline(
        // The marker's own error (WRONGTYPE: someone made it a hash) is an answer about the marker, not a
        // reason to drop the count: it used to discard both, and a deleted set went unseen.
        Promise.all([client.sendCommand(['ZCOUNT', keys.live, `(${floor}`, '+inf']), this.#marker === undefined ? undefined : client.sendCommand(['GET', keys.epoch]).catch((e: unknown) => e)]),
        this.#o.commandTimeoutMs,
        'ZCOUNT',
      );
      // The marker goes with the data: counts can be fooled (duplicate or malformed members written
      // after a FLUSHALL), a FLUSHALL or an empty restart cannot leave the marker in place.
      if (this.#marker !== undefined && (epoch as unknown) !== this.#marker) {
        const what = epoch === null ? 'is gone' : epoch instanceof Error ? `is not readable (${epoch.message})` : 'changed';
        return `${keys.epoch} ${what}: Redis lost its data (FLUSHALL, a restart without persistence)`;
      }
      inRedis = Number(count);
    } catch (caught) {
      const err = plainReply(caught);
      if (!isErrorReply(err)) throw err;
      // An error reply (NOPERM: a user made before this check, without +zcount) gives no verdict;
      // reported, and the follower goes on rather than reloading the whole set every 5 s.
      this.#o.events?.error?.('follow', err as Error);
      return undefined;
    }
    if (inRedis >= held) {
      this.#healed();
      return undefined;
    }
    return `${this.#o.keys.live} holds ${inRedis} entries valid past ${new Date(floor * 1000).toISOString()}, this gate ${held}: entries were deleted or lost (FLUSHALL, a restart without persistence, DEL)`;
  }

  /**
   * After a load: the fleet's data marker (SET NX, then GET: the first gate's value wins). A Redis
   * refusing the write (maxmemory, a read-only replica, a user without +set) leaves the marker as it
   * is, and no marker means no marker check, never a failure.
   */
  async #markEpoch(client: RedisClient): Promise<void> {
    const { keys } = this.#o;
    try {
      const [, value] = await withDeadline(
        Promise.all([client.sendCommand(['SET', keys.epoch, randomBytes(16).toString('base64url'), 'NX']).catch((e: unknown) => e), client.sendCommand(['GET', keys.epoch])]),
        this.#o.commandTimeoutMs,
        'epoch',
      );
      this.#marker = typeof value === 'string' ? value : undefined;
    } catch (caught) {
      const err = plainReply(caught);
      if (!isErrorReply(err)) throw err;
      this.#marker = undefined;
    }
  }

  /** Why this gate cannot follow on from where it stood on a new connection (the log reset, or records trimmed unread), or undefined. */
  async #cannotFollowOn(client: RedisClient): Promise<string | undefined> {
    const info = await this.#logInfo(client);
    if (info === undefined) return 'the log is gone';
    if (info.entriesAdded === undefined || info.firstId === undefined) return 'this Redis does not report what its log trimmed (Redis 7+ does)';
    return resetReason(info, this.#lastId, this.#seenAdded) ?? trimmedUnread(info, this.#position());
  }

  /** Why records this gate has not read may have been trimmed before it could (trimmedUnread), or undefined. */
  async #trimmedSince(client: RedisClient, from: FollowPosition): Promise<string | undefined> {
    const info = await this.#logInfo(client);
    return info === undefined ? 'the log is gone' : trimmedUnread(info, from);
  }

  #position(): FollowPosition {
    return { lastId: this.#lastId, addedAtLoad: this.#addedAtLoad, readSinceLoad: this.#readSinceLoad };
  }

  /** XINFO STREAM of the change log, or undefined when there is no log. */
  async #logInfo(client: RedisClient, timeoutMs = this.#o.commandTimeoutMs): Promise<StreamInfo | undefined> {
    try {
      return parseStreamInfo(await withDeadline(client.sendCommand(['XINFO', 'STREAM', this.#o.keys.log]), timeoutMs, 'XINFO STREAM'));
    } catch (caught) {
      if (isErrorReply(caught) && /no such key/i.test((caught as Error).message)) return undefined;
      throw caught;
    }
  }

  /** Why the log is not the one read so far (XINFO STREAM), or undefined. Other error replies throw. */
  async #resetReason(client: RedisClient): Promise<string | undefined> {
    const info = await this.#logInfo(client);
    const why = resetReason(info, this.#lastId, this.#seenAdded) ?? (info === undefined ? undefined : trimmedUnread(info, this.#position()));
    this.#seenAdded = info?.entriesAdded;
    return why;
  }

  #apply(records: readonly StreamRecord[]): void {
    this.#readSinceLoad += records.length;
    if (records.length > 0) this.#lastId = records[records.length - 1]![0];
    this.#applyRecords(records);
  }

  /** Adds the entries of log records to the list enforced (and to one being loaded). */
  #applyRecords(records: readonly StreamRecord[], loading?: RevocationIndex): void {
    const lineErrors: LineError[] = [];
    for (const [id, fields] of records) {
      let json: string | undefined;
      for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === LOG_FIELD) json = fields[i + 1];
      const e = json === undefined ? `no "${LOG_FIELD}" field` : parseEntryText(json);
      if (typeof e === 'string') lineErrors.push({ line: 0, message: `log record ${id}${json === undefined ? '' : ` ${excerpt(json)}`}: ${e}` });
      else {
        this.#index.add(e);
        loading?.add(e);
      }
    }
    if (records.length > 0) this.#o.events?.applied?.(records.length, this.#clock.nowMs() - streamIdMs(records[records.length - 1]![0]), lineErrors);
  }
}

/**
 * Adds to `index` (just loaded from Redis) every unexpired entry of `held` (what the gate enforced
 * until now); returns those `index` did not already cover, and how many were held. Nothing the gate
 * held is dropped by a load. In slices, the event loop free between them: held may be millions.
 */
async function keepHeld(index: RevocationIndex, held: RevocationIndex, cutoff: number, between: () => Promise<void>): Promise<{ missing: RevocationEntry[]; held: number }> {
  const missing: RevocationEntry[] = [];
  let count = 0;
  const unexpired = (e: RevocationEntry): boolean => e.exp === undefined || e.exp >= cutoff;
  // Only entries someone wrote can be missing from Redis; cut-offs the index merged are kept, not written back.
  await eachSliced(
    held.entries(false),
    (e) => {
      if (!unexpired(e)) return;
      count++;
      if (!index.covers(e)) missing.push(e);
    },
    between,
  );
  await eachSliced(
    held.entries(),
    (e) => {
      if (unexpired(e)) index.add(e); // add also keeps the later of two exps
    },
    between,
  );
  return { missing, held: count };
}

/**
 * A short, JSON-escaped start of a malformed member or record for the log: enough to find it, too
 * short to carry a whole token, and a JWT-looking run (base64url JSON, `eyJ…`) is cut whole — also
 * when the 60 characters end inside its header, which a long `kid` makes (found by a black-box probe).
 */
function excerpt(text: string): string {
  const short = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(short.replace(/eyJ[\w.-]*…?/g, 'eyJ…'));
}
