/**
 * A gate's fleet state on Redis (SPEC §9), built from the `redis` block when `revocation.redis`
 * or `dpop.replay: redis` asks for it. Two connections per gate process (each cluster worker has
 * its own): the follower, which blocks on the revocation log (RedisRevocationSource), and the
 * command connection for writes, DPoP proof records and the sweep. Nothing here is on the path
 * of a cached bearer request: the decision reads the in-memory index and `lastSyncAt` only.
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../config/schema.ts';
import { StartupError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { RevocationEntry } from '../revocation/entries.ts';
import { redisKeys, type RedisKeys } from './redis-layout.ts';
import { countsInRedis } from '../anomaly/refusal-counter.ts';
import { evictionRisk, type FleetUses } from './redis-eviction.ts';
import { readRedisPassword } from './redis-files.ts';
import { redactUrl } from '../observability/redact-url.ts';
import { isErrorReply, RedisLink, type RedisConnectOptions } from './redis-link.ts';
import { sharedNonceKey } from './redis-nonce-key.ts';
import { RedisReplayGuard } from './redis-replay.ts';
import { RedisRevocationSource } from './redis-source.ts';
import { RedisSweeper } from './redis-sweeper.ts';
import { writeEntries } from './redis-writer.ts';

/** How often a nonce key read that failed after start is tried again while the connection stays up. */
const NONCE_RETRY_MS = 5_000;
/** How often Redis's memory policy is read again (redis-eviction.ts). */
const EVICTION_CHECK_MS = 30_000;

export interface FleetDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: Clock;
}

type RedisConfig = NonNullable<Config['redis']>;

/** Connection options from the `redis` block; the password file is read here (startup). */
export function connectOptions(redis: RedisConfig): RedisConnectOptions {
  const password = redis.password_file === undefined ? undefined : readRedisPassword(redis.password_file);
  return { url: redis.url, password, caFile: redis.ca_file, connectTimeoutMs: redis.connect_timeout, commandTimeoutMs: redis.command_timeout };
}

/** The largest clock_tolerance of any issuer, in seconds: an entry counts until exp + this (SPEC §5). */
export function maxToleranceSec(config: Config): number {
  return Math.max(0, ...config.issuers.map((i) => i.clock_tolerance)) / 1000;
}

/** Writes entries through a command connection; resolves with the live set's size once Redis acknowledged. */
export interface RedisRevocationWriter {
  readonly description: string;
  write(entries: readonly RevocationEntry[]): Promise<number>;
  /** The live set's size (ZCARD): what the primary, which follows no Redis source, reports on GET /revocations. */
  count(): Promise<number>;
}

/**
 * `own`: this process's follower, which enforces an acknowledged write at once (not only once it reads it back).
 * `failed`: told of each write Redis did not acknowledge (counted as `jitgate_redis_errors_total{op="write"}`).
 */
export function redisWriter(link: RedisLink, keys: RedisKeys, description: string, own?: RedisRevocationSource, failed?: (err: Error) => void): RedisRevocationWriter {
  return {
    description,
    write: async (entries) => {
      let size: number;
      try {
        size = await link.run('revocation write', (c) => writeEntries(c, keys, entries));
      } catch (err) {
        failed?.(err as Error);
        throw err;
      }
      own?.applyOwn(entries);
      return size;
    },
    count: () => link.run('revocation count', (c) => c.zCard(keys.live)),
  };
}

export class Fleet {
  readonly keys: RedisKeys;
  readonly link: RedisLink;
  readonly source: RedisRevocationSource | undefined;
  readonly replay: RedisReplayGuard | undefined;
  readonly writer: RedisRevocationWriter;
  readonly description: string;
  readonly #sharesNonces: boolean;
  /** The fleet's DPoP nonce key has been read and handed to `#useNonceKey`. */
  #nonceKeyRead = false;
  /** Set by start when nonces are shared: where every key read (during start or later) goes. */
  #useNonceKey: ((key: Buffer) => void) | undefined;
  #learning = false;
  #nonceProblem: string | undefined;
  /** A key read that failed on a connection that stays up (an error reply) is tried again on this timer. */
  #nonceRetry: NodeJS.Timeout | undefined;
  /** start has finished its own reads: a connection made from now on does them (onReady). */
  #started = false;
  readonly #uses: FleetUses;
  /** Set while Redis's memory policy may evict what this gate keeps there (redis-eviction.ts): a /readyz problem. */
  #evictionProblem: string | undefined;
  #infoRefused = false;
  #evictionTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #sweeper: RedisSweeper | undefined;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  #lag: NodeJS.Timeout | undefined;

  constructor(config: Config, deps: FleetDeps) {
    const redis = config.redis!;
    const m = deps.metrics;
    const log = deps.logger.child({ component: 'redis' });
    this.#log = log;
    this.#metrics = m;
    const opts = connectOptions(redis);
    this.keys = redisKeys(redis.key_prefix);
    this.description = `${redactUrl(redis.url)} prefix ${redis.key_prefix}`;
    const errorLog = (op: string, msg = 'redis operation failed') => (err: Error) => {
      m.redisErrors.labels(op).inc();
      log.warn({ op, err: err.message }, msg);
    };
    this.link = new RedisLink({
      ...opts,
      name: 'jitgate-command',
      onState: (connected, err) => {
        m.redisConnected.labels('command').set(connected ? 1 : 0);
        if (connected) log.info({ redis: this.description }, 'redis command connection ready');
        // Also after a command's timeout dropped the connection: said as lost, with what lost it, not as a
        // failed operation "connect" with a DPoP SET's timeout as its error (a probe read it so).
        else errorLog('connect', 'redis command connection lost or not made; reconnecting')(err ?? new Error('disconnected'));
      },
      // A gate started while Redis was unreachable does what start could not once Redis answers.
      onReady: () => this.#lateStart(),
    });
    const tolerance = maxToleranceSec(config);
    this.#sweeper = config.revocation.redis
      ? new RedisSweeper(this.link, this.keys, tolerance, errorLog('sweep'), (newest) =>
          log.warn({ newest_id: newest, key: this.keys.log }, 'redis revocation log had a record dated in the future; deleted the log so it can be trimmed again (gates reload the live set)'),
        )
      : undefined;
    this.replay =
      config.dpop.replay === 'redis'
        ? new RedisReplayGuard(this.link, this.keys, config.dpop.replay_cache_entries, config.dpop.iat_window, (o) => {
            m.dpopReplayChecks.labels('redis', o).inc();
            if (o === 'unavailable') m.redisErrors.labels('replay').inc();
          })
        : undefined;
    this.source = config.revocation.redis ? redisSource(config, deps, opts, this.keys, tolerance) : undefined;
    // Counted only: the caller (the admin API, an anomaly revocation) logs the refusal with its context.
    this.writer = redisWriter(this.link, this.keys, this.description, this.source, () => m.redisErrors.labels('write').inc());
    this.#sharesNonces = config.dpop.use_nonce;
    this.#uses = { revocations: config.revocation.redis, dpopReplay: config.dpop.replay === 'redis', nonces: config.dpop.use_nonce, anomalyCounts: countsInRedis(config) };
  }

  /**
   * The command connection; the follower is started by the revocation list like every source.
   * `useNonceKey` gets the fleet's DPoP nonce key once read: during start, or once Redis answers
   * when it was unreachable then.
   */
  async start(useNonceKey: (key: Buffer) => void = () => {}): Promise<void> {
    const unreachable = await this.link.connect();
    // Stopped meanwhile (the gate's start failed elsewhere): nothing may be left running.
    if (this.#stopped) return;
    if (unreachable !== undefined) {
      this.#log.error({ err: unreachable.message }, 'redis unreachable at start; retrying in the background — not ready, and what needs Redis answers 503, until it answers (check redis.url if this persists)');
    }
    if (this.#sharesNonces) {
      this.#useNonceKey = useNonceKey;
      // A key that is damaged or refused is a start-up error while Redis answers now; read later, it is a /readyz problem.
      if (unreachable === undefined) {
        useNonceKey(await sharedNonceKey(this.link, this.keys));
        this.#nonceKeyRead = true;
      }
    }
    const replay = this.replay;
    if (replay !== undefined && unreachable === undefined) await this.#agreeWindow(replay);
    // Each await above is a moment the gate's start may have failed elsewhere and stopped this.
    if (this.#stopped) return;
    replay?.start(this.#windowFailed(replay));
    this.#started = true;
    this.#sweeper?.start();
    // At start and every EVICTION_CHECK_MS: a policy is also changed on a live Redis (CONFIG SET).
    if (unreachable === undefined) void this.#checkEviction();
    this.#evictionTimer = setInterval(() => {
      if (this.link.client !== undefined) void this.#checkEviction();
    }, EVICTION_CHECK_MS);
    this.#evictionTimer.unref();
    const source = this.source;
    if (source !== undefined) {
      // The lag gauge keeps growing while Redis is away (no read answers to set it).
      this.#lag = setInterval(() => {
        if (source.lastSyncAt !== undefined) this.#metrics.redisSyncLag.set(Math.max(0, Date.now() - source.lastSyncAt) / 1000);
      }, 1000);
      this.#lag.unref();
    }
  }

  /** Adds this gate's DPoP window to the fleet's and reads the fleet's (redis-replay.ts); a failure is logged, never thrown. */
  async #agreeWindow(replay: RedisReplayGuard): Promise<void> {
    try {
      const fleet = await replay.agreeWindow();
      this.#log.info({ window_ms: fleet, key: this.keys.dpopWindow }, 'dpop replay keys live twice the fleet window plus 5 s');
    } catch (err) {
      this.#windowFailed(replay)(err as Error);
    }
  }

  #windowFailed(replay: RedisReplayGuard): (err: Error) => void {
    return (err) => {
      this.#metrics.redisErrors.labels('replay').inc();
      this.#log.warn({ op: 'dpop window', err: err.message, window_ms: replay.windowMs }, 'could not read the fleet DPoP window from Redis; replay keys keep the window they had');
    };
  }

  /**
   * A connection made after start (Redis was unreachable then, or came back): the reads start could
   * not do. The DPoP window at once, not at its next 10 s refresh: until this gate's window is in the
   * fleet's, gates with a shorter one record proofs for less time than this gate accepts them.
   */
  #lateStart(): void {
    if (!this.#started || this.#stopped) return;
    if (this.#useNonceKey !== undefined && !this.#nonceKeyRead) void this.#learnNonceKey();
    if (this.replay !== undefined) void this.#agreeWindow(this.replay);
    void this.#checkEviction();
  }

  /** Reads Redis's memory policy; one that may evict what this gate keeps there is a /readyz problem until it changes. */
  async #checkEviction(): Promise<void> {
    let info: string;
    try {
      info = String(await this.link.run('INFO memory', (c) => c.sendCommand(['INFO', 'memory'])));
    } catch (err) {
      if (isErrorReply(err) && !this.#infoRefused) {
        this.#infoRefused = true;
        this.#log.warn({ err: (err as Error).message }, 'redis refused INFO (grant +info, docs/fleet.md "ACL"): whether Redis may evict jitgate\'s keys is not checked; make sure maxmemory-policy is noeviction');
      }
      // Not connected or no answer: the connection's own problems say so; the next check asks again.
      return;
    }
    if (this.#stopped) return;
    const risk = evictionRisk(info, this.#uses);
    if (risk !== undefined && risk !== this.#evictionProblem) this.#log.error({ redis: this.description }, `redis ${risk}; not ready until it does not`);
    else if (risk === undefined && this.#evictionProblem !== undefined) this.#log.info({ redis: this.description }, 'redis no longer evicts what this gate keeps there');
    this.#evictionProblem = risk;
  }

  /**
   * Reads the nonce key after start. A failure stays a /readyz problem and is tried again every
   * NONCE_RETRY_MS (an error reply leaves the connection up, so no new connection would ask again:
   * a damaged key deleted as the message says would otherwise wait for a restart).
   */
  async #learnNonceKey(): Promise<void> {
    const use = this.#useNonceKey;
    if (use === undefined || this.#learning || this.#nonceKeyRead || this.#stopped) return;
    this.#learning = true;
    try {
      const key = await sharedNonceKey(this.link, this.keys);
      if (this.#stopped) return;
      this.#nonceKeyRead = true;
      this.#nonceProblem = undefined;
      use(key);
      this.#log.info({ key: this.keys.nonceKey }, 'dpop nonces: the fleet key was read from redis; nonces handed out before it are refused once (use_dpop_nonce)');
    } catch (err) {
      this.#nonceProblem = (err as Error).message;
      this.#metrics.redisErrors.labels('nonce_key').inc();
      this.#log.error({ err: this.#nonceProblem }, `could not read the fleet DPoP nonce key from redis; tried again in ${NONCE_RETRY_MS / 1000} s and at the next connection`);
      if (this.#nonceRetry === undefined && !this.#stopped) {
        this.#nonceRetry = setTimeout(() => {
          this.#nonceRetry = undefined;
          if (this.link.client !== undefined) void this.#learnNonceKey();
        }, NONCE_RETRY_MS);
        this.#nonceRetry.unref();
      }
    } finally {
      this.#learning = false;
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#nonceRetry !== undefined) clearTimeout(this.#nonceRetry);
    if (this.#evictionTimer !== undefined) clearInterval(this.#evictionTimer);
    if (this.#lag !== undefined) clearInterval(this.#lag);
    this.#sweeper?.stop();
    this.replay?.stop();
    this.link.stop();
  }

  /**
   * For /readyz: DPoP-bound requests fail (503) while the command connection is down; a gate whose
   * nonces are not yet the fleet's would refuse every nonce another gate handed out.
   */
  problems(): string[] {
    const out: string[] = [];
    if (this.replay !== undefined && this.link.client === undefined) {
      out.push(`redis ${this.description} not connected (dpop.replay: redis answers DPoP-bound requests 503 replay_check_unavailable)${this.link.lastError ? `: ${this.link.lastError.message}` : ''}`);
    }
    if (this.#evictionProblem !== undefined) out.push(`redis ${this.description}: ${this.#evictionProblem}`);
    if (this.#sharesNonces && !this.#nonceKeyRead) {
      out.push(`dpop.use_nonce: the fleet's DPoP nonce key has not been read from redis ${this.description} yet (${this.#nonceProblem ?? (this.link.lastError ? `not connected: ${this.link.lastError.message}` : 'not connected')})`);
    }
    return out;
  }
}

/** Fleet state when the config asks for it (shared revocations, DPoP replay or DPoP nonces), else undefined. */
export function openFleet(config: Config, deps: FleetDeps): Fleet | undefined {
  if (config.redis === undefined || (!config.revocation.redis && config.dpop.replay !== 'redis' && !config.dpop.use_nonce)) return undefined;
  return new Fleet(config, deps);
}

function redisSource(config: Config, deps: FleetDeps, opts: RedisConnectOptions, keys: RedisKeys, toleranceSec: number): RedisRevocationSource {
  const m = deps.metrics;
  const log = deps.logger.child({ component: 'revocation' });
  const maxStale = config.revocation.max_stale;
  const source: RedisRevocationSource = new RedisRevocationSource({
    ...opts,
    keys,
    prefix: config.redis!.key_prefix,
    maxStaleMs: maxStale,
    toleranceSec,
    clock: deps.clock,
    events: {
      state: (connected) => m.redisConnected.labels('follower').set(connected ? 1 : 0),
      resync: (i) => {
        m.revocationSyncs.labels(i.source, i.result).inc();
        m.revocationSyncSeconds.labels(i.source).observe(i.durationMs / 1000);
        m.revocationEntries.labels(i.source).set(i.entries);
        for (const e of i.lineErrors.slice(0, 20)) log.error({ source: i.source, problem: e.message }, 'redis revocation member skipped (malformed)');
        if (i.result === 'ok') {
          m.revocationLastSync.labels(i.source).set(Date.now() / 1000);
          m.redisEntriesMissing.set(i.missing);
          log.info({ source: i.source, entries: i.entries, in_redis: i.inRedis, skipped: i.lineErrors.length, duration_ms: Math.round(i.durationMs) }, 'revocation list loaded from redis');
          if (i.missing > 0) {
            log.warn(
              { source: i.source, held: i.held, in_redis: i.inRedis, missing: i.missing, written_back: i.restoreError === undefined, err: i.restoreError?.message },
              'held entries missing from redis; kept them (Redis lost data: restarted empty, restored or deleted?)',
            );
          }
        }
      },
      writtenBack: (i) => log.warn({ source: i.source, entries: i.entries }, 'held entries Redis had refused are written back now'),
      lossHealed: (source) => {
        m.redisEntriesMissing.set(0);
        log.info({ source }, 'redis holds every entry this gate holds again');
      },
      scanRefused: () => log.warn({ source: source.name }, 'the redis user may not ZSCAN (grant +zscan, docs/fleet.md "ACL"): this load reads the whole revocation set in one ZRANGE'),
      loading: (p) => log.info({ source: p.source, read: p.read, duration_ms: Math.round(p.durationMs) }, 'loading revocation list from redis (the list loaded before answers meanwhile, with records logged since)'),
      // Said, because the read the freeze held then times out and is logged as Redis's fault (a re-probe).
      stalled: (ms) =>
        log.warn({ source: source.name, stalled_ms: Math.round(ms) }, 'this process stood still (frozen or paused); decisions answer 503 revocation_stale until the follower has read past it, and a Redis read timing out now is this, not Redis'),
      reset: (why) => {
        m.redisLogResets.inc();
        log.warn({ source: source.name, why }, 'redis revocation log cannot be followed from here (reset, went backwards, lost entries, or this gate fell behind); reloading the live set');
      },
      applied: (records, delayMs, lineErrors) => {
        m.revocationEntries.labels(source.name).set(source.index.size);
        m.redisChangeDelay.observe(Math.max(0, delayMs) / 1000);
        for (const e of lineErrors.slice(0, 20)) log.error({ source: source.name, problem: e.message }, 'redis revocation log record skipped (malformed)');
        log.info({ source: source.name, records, entries: source.index.size, delay_ms: Math.round(delayMs) }, 'revocations applied from redis');
      },
      followed: () => {
        m.redisSyncLag.set(0);
        // Entries past exp + tolerance are pruned on a timer, not applied: the gauge follows the index (about once a second).
        m.revocationEntries.labels(source.name).set(source.index.size);
        m.revocationLastSync.labels(source.name).set(Date.now() / 1000);
      },
      error: (op, err) => {
        m.redisErrors.labels(op).inc();
        const age = source.lastSyncAt === undefined ? undefined : Date.now() - source.lastSyncAt;
        if (age !== undefined) m.redisSyncLag.set(age / 1000);
        const fields = { source: source.name, op, err: err.message, age_ms: age };
        if (age === undefined || age > maxStale) log.error(fields, 'redis revocation source not synced within max_stale; every decision answers 503 revocation_stale');
        else log.warn(fields, 'redis revocation sync failed; keeping the last list, retrying');
      },
    },
  });
  return source;
}

/**
 * The cluster primary's Redis connection: it serves `POST /revocations` for all workers and writes
 * there itself (the workers follow Redis on their own connections). Throws a StartupError naming
 * the key at fault.
 */
export async function openRedisWriter(config: Config, logger: Logger): Promise<{ writer: RedisRevocationWriter; problems(): string[]; stop(): void }> {
  const redis = config.redis!;
  const log = logger.child({ component: 'redis' });
  const description = `${redactUrl(redis.url)} prefix ${redis.key_prefix}`;
  const link = new RedisLink({
    ...connectOptions(redis),
    name: 'jitgate-primary',
    onState: (connected, err) => (connected ? log.info({ redis: description }, 'redis connection ready') : log.warn({ err: err?.message }, 'redis connection lost; reconnecting')),
  });
  // Unreachable at start: POST /revocations answers 503 until it answers (problems below), as after a lost connection.
  const unreachable = await link.connect();
  if (unreachable !== undefined) log.error({ err: unreachable.message }, 'redis unreachable at start; retrying in the background');
  return {
    writer: redisWriter(link, redisKeys(redis.key_prefix), description),
    // Only the admin API writes through this connection: proxy decisions stay right without it,
    // so /readyz lists it as a problem while ready, as a worker's refused reload is listed.
    problems: () => (link.client !== undefined ? [] : [`primary: redis ${description} not connected (POST /revocations answers 503 redis_unavailable)${link.lastError ? `: ${link.lastError.message}` : ''}`]),
    stop: () => link.stop(),
  };
}
