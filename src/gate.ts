/**
 * Wires keys, revocation, the token cache and the decision core into one Gate that every
 * transport is handed. Owns the lifecycle of the stateful parts (start before ready, stop on exit).
 */
import { VerifiedTokenCache } from './cache/verified-tokens.ts';
import { systemClock, type Clock } from './core/clock.ts';
import type { Decision, DecisionInput } from './core/decision.ts';
import { Decider, type SharedDpopState } from './core/decide.ts';
import type { GatePolicy } from './core/policy.ts';
import type { VerifiedToken } from './core/verified-token.ts';
import { compilePolicy } from './config/compile.ts';
import type { Config, IssuerConfig } from './config/schema.ts';
import { StartupError } from './errors.ts';
import { FileIssuerKeys, type IssuerKeys } from './keys/issuer-keys.ts';
import { FileRevocationSource, type FileSourceEvents } from './revocation/file-source.ts';
import { RevocationList, type RevocationSource } from './revocation/revocation-list.ts';
import { statusListsConfig, StatusLists, type StatusListsOptions } from './status-list/list-cache.ts';
import { revocationRetainMs } from './revocation/retention.ts';
import type { Fleet } from './fleet/fleet.ts';
import { ProblemBoard } from './observability/problem-board.ts';

export interface GateOptions {
  readonly clock?: Clock;
  /** Builds the key source for a jwks_uri issuer (remote keys). */
  readonly remoteKeys?: (issuer: IssuerConfig) => IssuerKeys;
  /** Extra revocation sources (remote URL, admin journal) built by their modules. */
  readonly extraRevocationSources?: readonly RevocationSource[];
  readonly revocationFileEvents?: FileSourceEvents;
  /** Cluster workers: proof jtis recorded in the primary (src/cluster.ts); a fleet: in Redis. */
  readonly dpopShared?: SharedDpopState;
  /** Cluster workers: the primary's DPoP nonce key, so every worker derives the same nonces. A fleet's key from Redis wins. */
  readonly nonceKey?: Buffer;
  /** How status lists (SPEC §10) are fetched and reported; the clock is the gate's. */
  readonly statusLists?: Omit<StatusListsOptions, 'clock'>;
  /** Fleet state on Redis (SPEC §9): its revocation source is among the extra sources, its replay guard in dpopShared. */
  readonly fleet?: Fleet;
}

/** Sees every decision after it is made (src/anomaly/anomaly-watch.ts); must not throw and cannot change it. */
export interface RefusalObserver {
  observe(input: DecisionInput, decision: Decision): void;
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not, one line per problem (for /readyz); when ready, what is degraded but still decided right (a refused reload). */
  readonly problems: readonly string[];
}

export class Gate {
  readonly config: Config;
  readonly policy: GatePolicy;
  readonly clock: Clock;
  readonly cache: VerifiedTokenCache;
  readonly revocation: RevocationList;
  readonly issuerKeys: readonly IssuerKeys[];
  /** One per issuer with a `status_list` block (SPEC §10). */
  readonly statusLists: readonly StatusLists[];
  /** The Redis connections when the config shares state through Redis (src/fleet/fleet.ts). */
  readonly fleet: Fleet | undefined;
  /** What the transports around the gate report while it stays ready (a refused TLS reload): listed by readiness(). */
  readonly degraded = new ProblemBoard();
  readonly #decider: Decider;
  readonly #nonceKey: Buffer | undefined;
  #refusals: RefusalObserver | undefined;

  constructor(config: Config, file: string, options: GateOptions = {}) {
    this.config = config;
    this.clock = options.clock ?? systemClock;
    const keys: IssuerKeys[] = [];
    const statusLists: StatusLists[] = [];
    // Called by compilePolicy right after keysFor for the same issuer: a list is verified with that issuer's keys only.
    const statusListFor = (issuer: IssuerConfig): StatusLists | undefined => {
      if (issuer.status_list === undefined) return undefined;
      const lists = new StatusLists(statusListsConfig({ ...issuer, status_list: issuer.status_list }), keys[keys.length - 1]!, { ...options.statusLists, clock: this.clock });
      statusLists.push(lists);
      return lists;
    };
    this.policy = compilePolicy(config, file, (issuer) => {
      let k: IssuerKeys;
      if (issuer.jwks_file !== undefined) k = new FileIssuerKeys(issuer);
      else if (options.remoteKeys) k = options.remoteKeys(issuer);
      else throw new StartupError(`issuer ${issuer.issuer}: jwks_uri is not supported by this build`);
      keys.push(k);
      return k;
    }, statusListFor);
    this.issuerKeys = keys;
    this.statusLists = statusLists;
    this.fleet = options.fleet;
    this.#nonceKey = options.nonceKey;
    const sources: RevocationSource[] = [];
    if (config.revocation.file !== undefined) {
      sources.push(new FileRevocationSource(config.revocation.file, config.revocation.poll_interval, options.revocationFileEvents, { retainMs: revocationRetainMs(config) }));
    }
    if (options.extraRevocationSources) sources.push(...options.extraRevocationSources);
    this.revocation = new RevocationList(sources);
    this.cache = new VerifiedTokenCache(config.cache.max_entries);
    this.#decider = new Decider({
      policy: this.policy,
      clock: this.clock,
      cache: this.cache,
      revocation: this.revocation,
      dpopShared: options.dpopShared,
    });
  }

  /** Loads keys and revocation sources. Local files must load; remote ones may still be loading. */
  async start(): Promise<void> {
    const dpop = this.#decider.dpop;
    // The cluster primary's key first; a fleet's key from Redis, read during start or once Redis
    // answers (it was unreachable at start), replaces it.
    if (this.#nonceKey !== undefined) dpop?.useNonceKey(this.#nonceKey);
    await Promise.all([...this.issuerKeys.map((k) => k.start()), this.revocation.start(), this.fleet?.start((key) => dpop?.useNonceKey(key))]);
  }

  stop(): void {
    this.fleet?.stop();
    for (const k of this.issuerKeys) k.stop();
    for (const s of this.statusLists) s.stop();
    this.revocation.stop();
  }

  /** Synchronous for a cached token (the hot path); a promise on a cache miss or a DPoP proof. */
  decide(input: DecisionInput): Decision | Promise<Decision> {
    const d = this.#decider.decide(input);
    const o = this.#refusals;
    if (o === undefined) return d;
    // SPEC §12: refusals are counted after the fact; the decision itself is never changed.
    if (d instanceof Promise) return d.then((x) => (o.observe(input, x), x));
    o.observe(input, d);
    return d;
  }

  /** SPEC §12: the token behind a request refused before verification (Decider.identify); for counting only. */
  identify(authorization: string): VerifiedToken | undefined | Promise<VerifiedToken | undefined> {
    return this.#decider.identify(authorization);
  }

  /** SPEC §12: every decision is shown to `observer` (anomaly counting); set once, at wiring time. */
  observeRefusals(observer: RefusalObserver): void {
    this.#refusals = observer;
  }

  readiness(): Readiness {
    const now = this.clock.nowMs();
    const problems: string[] = [];
    for (const k of this.issuerKeys) {
      const s = k.state(now);
      if (s === 'loading') problems.push(`keys for issuer ${k.issuer} not loaded yet`);
      else if (s === 'stale') problems.push(`keys for issuer ${k.issuer} are stale (refresh failing past jwks_max_stale)`);
    }
    const stale = this.revocation.staleSource(now);
    if (stale !== undefined) problems.push(`revocation source ${stale} has not synced within max_stale`);
    if (this.fleet !== undefined) problems.push(...this.fleet.problems());
    const ready = problems.length === 0;
    // A refused reload keeps the last good list (or key set) in force, so the gate stays ready; operators see why.
    for (const k of this.issuerKeys) if (k.problem !== undefined) problems.push(k.problem);
    for (const s of this.revocation.sources) if (s.problem !== undefined) problems.push(s.problem);
    // A status list that never loaded or went stale fails only the tokens pointing into it (503, fail
    // closed); one bad list — often one URI that 404s — must not take the gate out of a load balancer
    // for every other issuer and list, so it is shown but leaves the gate ready.
    for (const s of this.statusLists) problems.push(...s.problems(now));
    problems.push(...this.degraded.list());
    return { ready, problems };
  }
}
