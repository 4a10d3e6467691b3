/**
 * Wires keys, revocation, the token cache and the decision core into one Gate that every
 * transport is handed. Owns the lifecycle of the stateful parts (start before ready, stop on exit).
 */
import { VerifiedTokenCache } from './cache/verified-tokens.ts';
import { systemClock, type Clock } from './core/clock.ts';
import type { Decision, DecisionInput } from './core/decision.ts';
import { Decider, type SharedDpopState } from './core/decide.ts';
import type { GatePolicy } from './core/policy.ts';
import { compilePolicy } from './config/compile.ts';
import type { Config, IssuerConfig } from './config/schema.ts';
import { StartupError } from './errors.ts';
import { FileIssuerKeys, type IssuerKeys } from './keys/issuer-keys.ts';
import { FileRevocationSource, type FileSourceEvents } from './revocation/file-source.ts';
import { RevocationList, type RevocationSource } from './revocation/revocation-list.ts';
import type { Fleet } from './fleet/fleet.ts';

export interface GateOptions {
  readonly clock?: Clock;
  /** Builds the key source for a jwks_uri issuer (remote keys). */
  readonly remoteKeys?: (issuer: IssuerConfig) => IssuerKeys;
  /** Extra revocation sources (remote URL, admin journal) built by their modules. */
  readonly extraRevocationSources?: readonly RevocationSource[];
  readonly revocationFileEvents?: FileSourceEvents;
  /** Cluster workers: proof jtis recorded in the primary, nonces under its key (src/cluster.ts). */
  readonly dpopShared?: SharedDpopState;
  /** Fleet state on Redis (SPEC §9): its revocation source is among the extra sources, its replay guard in dpopShared. */
  readonly fleet?: Fleet;
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not, one line per problem (for /readyz). */
  readonly problems: readonly string[];
}

export class Gate {
  readonly config: Config;
  readonly policy: GatePolicy;
  readonly clock: Clock;
  readonly cache: VerifiedTokenCache;
  readonly revocation: RevocationList;
  readonly issuerKeys: readonly IssuerKeys[];
  /** The Redis connections when the config shares state through Redis (src/fleet/fleet.ts). */
  readonly fleet: Fleet | undefined;
  readonly #decider: Decider;

  constructor(config: Config, file: string, options: GateOptions = {}) {
    this.config = config;
    this.clock = options.clock ?? systemClock;
    const keys: IssuerKeys[] = [];
    this.policy = compilePolicy(config, file, (issuer) => {
      let k: IssuerKeys;
      if (issuer.jwks_file !== undefined) k = new FileIssuerKeys(issuer);
      else if (options.remoteKeys) k = options.remoteKeys(issuer);
      else throw new StartupError(`issuer ${issuer.issuer}: jwks_uri is not supported by this build`);
      keys.push(k);
      return k;
    });
    this.issuerKeys = keys;
    this.fleet = options.fleet;
    const sources: RevocationSource[] = [];
    if (config.revocation.file !== undefined) {
      sources.push(new FileRevocationSource(config.revocation.file, config.revocation.poll_interval, options.revocationFileEvents));
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
    await Promise.all([...this.issuerKeys.map((k) => k.start()), this.revocation.start(), this.fleet?.start()]);
  }

  stop(): void {
    this.fleet?.stop();
    for (const k of this.issuerKeys) k.stop();
    this.revocation.stop();
  }

  /** Synchronous for a cached token (the hot path); a promise on a cache miss or a DPoP proof. */
  decide(input: DecisionInput): Decision | Promise<Decision> {
    return this.#decider.decide(input);
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
    return { ready: problems.length === 0, problems };
  }
}
