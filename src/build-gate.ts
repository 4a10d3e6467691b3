/**
 * Config → a Gate with every key and revocation source the config names, wired to metrics and
 * logs. The one place that knows which source class serves which config key:
 *   issuers[].jwks_file → FileIssuerKeys (in gate.ts) · issuers[].jwks_uri → RemoteIssuerKeys
 *   revocation.file → FileRevocationSource (in gate.ts) · revocation.url → HttpRevocationSource
 *   revocation.journal → JournalRevocationSource (the admin API's entries; in a cluster worker a
 *                        JournalFollowerSource fed by the primary, which owns the file)
 *
 * Every refresh and sync is counted (result), timed, and logged with entries and age. Unchanged
 * polls (304) log at debug so a 2 s poll does not flood the log; changes log at info, failures at
 * warn (or error once the gate is failing closed because of them).
 */
import type { Logger } from 'pino';
import { SharedReplayGuard, type ReplayChannel } from './cache/shared-dpop-replay.ts';
import { systemClock, type Clock } from './core/clock.ts';
import type { Config, IssuerConfig } from './config/schema.ts';
import { Gate } from './gate.ts';
import { RemoteIssuerKeys, type JwksRefreshInfo } from './keys/remote-issuer-keys.ts';
import type { Metrics } from './observability/metrics.ts';
import { HttpRevocationSource, type RevocationSyncInfo } from './revocation/http-source.ts';
import { JournalFollowerSource, type PrimaryChannel } from './revocation/journal-follower.ts';
import { JournalRevocationSource, type JournalReplayInfo } from './revocation/journal-source.ts';
import type { RevocationSource } from './revocation/revocation-list.ts';
import { statusListReporter } from './status-list/report.ts';
import { revocationRetainMs } from './revocation/retention.ts';

export interface BuildGateDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Set in a cluster worker: what it shares with the other workers through the primary. */
  readonly primary?: WorkerLink;
}

/**
 * A cluster worker's link to the primary (src/cluster.ts). The journal's entries then come from
 * the primary, which alone owns the file (journal-follower.ts); DPoP proof jtis are recorded there
 * (shared-dpop-replay.ts) and nonces derived from its key.
 */
export interface WorkerLink {
  readonly channel: PrimaryChannel & ReplayChannel;
  readonly nonceKey: Buffer | undefined;
}

const ms = (n: number | undefined): number | undefined => (n === undefined ? undefined : Math.round(n));

function errorFields(err: Error | undefined): Record<string, unknown> {
  if (err === undefined) return {};
  const code = (err as { code?: unknown }).code;
  return { err: err.message, ...(typeof code === 'string' ? { code } : {}) };
}

function jwksReporter(deps: BuildGateDeps, config: IssuerConfig): (i: JwksRefreshInfo) => void {
  const log = deps.logger.child({ component: 'jwks', issuer: config.issuer });
  const m = deps.metrics;
  return (i) => {
    m.jwksRefreshes.labels(i.issuer, i.result).inc();
    m.jwksRefreshSeconds.labels(i.issuer).observe(i.durationMs / 1000);
    m.jwksKeys.labels(i.issuer).set(i.keys);
    if (i.result === 'ok' || i.result === 'not_modified') m.jwksLastRefresh.labels(i.issuer).set(Date.now() / 1000);
    const fields = {
      cause: i.cause,
      result: i.result,
      keys: i.keys,
      duration_ms: ms(i.durationMs),
      age_ms: ms(i.ageMs),
      next_in_ms: ms(i.nextInMs),
      ...(i.result === 'ok' ? { added: i.added, removed: i.removed } : {}),
      ...errorFields(i.error),
    };
    for (const s of i.skipped ?? []) log.warn({ problem: s }, 'JWKS key skipped');
    if (i.result === 'error') {
      const state = i.ageMs === undefined ? 'loading' : i.ageMs > config.jwks_max_stale ? 'stale' : 'ready';
      if (state === 'ready') log.warn(fields, 'JWKS refresh failed; keeping the last good set');
      else log.error({ ...fields, state }, state === 'loading' ? 'JWKS not loaded; tokens of this issuer get 503 keys_unavailable' : 'JWKS stale past jwks_max_stale; tokens of this issuer get 503 keys_stale');
    } else if (i.result === 'not_modified') log.debug(fields, 'JWKS unchanged');
    else log.info(fields, 'JWKS refreshed');
  };
}

function syncReporter(deps: BuildGateDeps, maxStaleMs: number): (i: RevocationSyncInfo) => void {
  const log = deps.logger.child({ component: 'revocation' });
  const m = deps.metrics;
  return (i) => {
    m.revocationSyncs.labels(i.source, i.result).inc();
    if (i.refused !== undefined) m.revocationReloadRefused.labels(i.source, i.refused).inc();
    m.revocationSyncSeconds.labels(i.source).observe(i.durationMs / 1000);
    m.revocationEntries.labels(i.source).set(i.entries);
    if (i.result === 'ok' || i.result === 'not_modified') m.revocationLastSync.labels(i.source).set(Date.now() / 1000);
    const fields = { source: i.source, result: i.result, entries: i.entries, duration_ms: ms(i.durationMs), age_ms: ms(i.ageMs), bytes: i.bytes, ...errorFields(i.error) };
    for (const e of (i.lineErrors ?? []).slice(0, 20)) log.warn({ source: i.source, line: e.line, problem: e.message }, 'revocation line skipped');
    if ((i.lineErrors?.length ?? 0) > 20) log.warn({ source: i.source, skipped: i.lineErrors!.length }, 'more revocation lines skipped');
    if (i.result === 'error') {
      const stale = i.ageMs === undefined || i.ageMs > maxStaleMs;
      if (stale) log.error(fields, 'revocation source not synced within max_stale; every decision answers 503 revocation_stale');
      else log.warn(fields, 'revocation sync failed; keeping the last list');
    } else if (i.result === 'not_modified') log.debug(fields, 'revocation list unchanged');
    else log.info({ ...fields, skipped: i.lineErrors?.length ?? 0 }, 'revocation list synced');
  };
}

/** What a journal replay found, in the log; the cluster primary, which owns the journal there, logs it the same way. */
export function logJournalReplay(log: Logger, i: JournalReplayInfo): void {
  for (const e of i.lineErrors) log.error({ source: i.source, line: e.line, problem: e.message }, 'revocation journal line unreadable; kept on disk, not enforced');
  if (i.tornTail) log.warn({ source: i.source }, 'revocation journal ended in a partial line (a write cut short by a crash, never acknowledged); dropped');
  log.info({ source: i.source, entries: i.entries, expired: i.expired, compacted: i.compacted, duration_ms: ms(i.durationMs) }, 'revocation journal replayed');
}

function journalSource(deps: BuildGateDeps, clock: Clock, file: string, retainMs: number): JournalRevocationSource {
  const log = deps.logger.child({ component: 'revocation' });
  const m = deps.metrics;
  return new JournalRevocationSource(file, {
    clock,
    retainMs,
    onReplay: (i) => {
      m.revocationEntries.labels(i.source).set(i.entries);
      m.revocationSyncs.labels(i.source, 'ok').inc();
      m.revocationSyncSeconds.labels(i.source).observe(i.durationMs / 1000);
      m.revocationLastSync.labels(i.source).set(Date.now() / 1000);
      logJournalReplay(log, i);
    },
    onAppend: (i) => {
      m.revocationEntries.labels(i.source).set(i.entries);
      m.revocationSyncs.labels(i.source, 'ok').inc();
      m.revocationSyncSeconds.labels(i.source).observe(i.durationMs / 1000);
      m.revocationLastSync.labels(i.source).set(Date.now() / 1000);
    },
  });
}

function followerSource(deps: BuildGateDeps, clock: Clock, file: string, primary: PrimaryChannel, retainMs: number): JournalFollowerSource {
  const m = deps.metrics;
  return new JournalFollowerSource(file, primary, {
    clock,
    retainMs,
    onUpdate: (i) => {
      m.revocationEntries.labels(i.source).set(i.entries);
      m.revocationSyncs.labels(i.source, 'ok').inc();
      m.revocationLastSync.labels(i.source).set(Date.now() / 1000);
    },
  });
}

/**
 * Async only to load the Redis client (src/fleet/fleet.ts, ~680 modules) when the config has a
 * `redis:` block (SPEC §9); a gate without one never loads it. Loading it here, not in each caller,
 * means no caller can build a gate that ignores a configured Redis.
 */
export async function buildGate(config: Config, file: string, deps: BuildGateDeps): Promise<Gate> {
  const openFleet = config.redis === undefined ? undefined : (await import('./fleet/fleet.ts')).openFleet;
  const clock = deps.clock ?? systemClock;
  const log = deps.logger.child({ component: 'revocation' });
  const rev = config.revocation;
  const retainMs = revocationRetainMs(config);
  const extra: RevocationSource[] = [];
  if (rev.url !== undefined) {
    extra.push(
      new HttpRevocationSource({
        url: rev.url,
        pollMs: rev.poll_interval,
        maxStaleMs: rev.max_stale,
        timeoutMs: rev.timeout,
        maxBytes: rev.max_bytes,
        clock,
        retainMs,
        onSync: syncReporter(deps, rev.max_stale),
      }),
    );
  }
  const primary = deps.primary;
  if (rev.journal !== undefined) extra.push(primary === undefined ? journalSource(deps, clock, rev.journal, retainMs) : followerSource(deps, clock, rev.journal, primary.channel, retainMs));

  // SPEC §9: Redis is one more revocation source and one more replay guard, chosen here.
  const fleet = openFleet?.(config, { metrics: deps.metrics, logger: deps.logger, clock });
  if (fleet?.source !== undefined) extra.push(fleet.source);

  const source = rev.file === undefined ? '' : `file:${rev.file}`;
  return new Gate(config, file, {
    fleet,
    clock,
    remoteKeys: (issuer) => new RemoteIssuerKeys(issuer, { clock, onRefresh: jwksReporter(deps, issuer) }),
    extraRevocationSources: extra,
    dpopShared:
      fleet?.replay !== undefined
        ? { replay: fleet.replay }
        : primary === undefined || config.dpop === undefined
          ? undefined
          : { replay: new SharedReplayGuard(primary.channel, config.dpop.replay_cache_entries) },
    nonceKey: primary?.nonceKey,
    statusLists: { onFetch: statusListReporter(deps.metrics, deps.logger) },
    revocationFileEvents: {
      loaded: ({ entries, errors, durationMs }) => {
        deps.metrics.revocationEntries.labels(source).set(entries);
        deps.metrics.revocationSyncs.labels(source, 'ok').inc();
        deps.metrics.revocationSyncSeconds.labels(source).observe(durationMs / 1000);
        deps.metrics.revocationLastSync.labels(source).set(Date.now() / 1000);
        for (const e of errors.slice(0, 20)) log.warn({ source, line: e.line, problem: e.message }, 'revocation line skipped');
        log.info({ source, entries, skipped: errors.length, duration_ms: Math.round(durationMs) }, 'revocation list loaded');
      },
      failed: (err) => {
        deps.metrics.revocationSyncs.labels(source, 'error').inc();
        log.error({ source, err: err.message }, 'revocation reload failed; keeping the last good list');
      },
      refused: ({ reason, detail, kept }) => {
        deps.metrics.revocationSyncs.labels(source, 'refused').inc();
        deps.metrics.revocationReloadRefused.labels(source, reason).inc();
        // A file caught mid-write is read again at the next poll; everything else needs the operator.
        if (reason === 'changing') log.warn({ source, reason, problem: detail, entries: kept }, 'revocation reload refused; keeping the last good list');
        else log.error({ source, reason, problem: detail, entries: kept }, 'revocation reload refused; keeping the last good list');
      },
    },
  });
}
