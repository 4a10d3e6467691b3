/**
 * Every metric jitgate exports, named in one place (like Envoy's stats.h). Each Gate process has
 * its own registry (no prom-client globals).
 *
 * The per-request metrics cost almost nothing on the request path (STYLE habit 8): decision
 * counts go into a plain array that the counter takes up when it is scraped (prom-client's
 * `collect` hook), and the two latency histograms are FastHistograms, whose bound children
 * observe without building or hashing label objects. What a scrape reports is unchanged.
 */
import client from 'prom-client';
import type { Decision } from '../core/decision.ts';
import { REASON_CODES, REASONS, type Reason } from '../core/reasons.ts';
import { FastHistogram, type HistogramChild } from './fast-histogram.ts';
import { droppedLogLines } from './logger.ts';

export type Transport = 'proxy' | 'ext_authz_http' | 'ext_authz_grpc' | 'forward_auth';
export const TRANSPORTS: readonly Transport[] = ['proxy', 'ext_authz_http', 'ext_authz_grpc', 'forward_auth'];

const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Cluster mode sums every worker's metrics (prom-client AggregatorRegistry). Gauges that describe a
 * state every worker holds separately report the worst worker instead of a meaningless sum: the
 * fewest keys or revocation entries, the stalest sync, ready only if all are.
 */
const MIN = 'min' as const;

/** `jitgate_ready`'s help, also where a cluster primary states the cluster's readiness (cluster-metrics.ts). */
export const READY_HELP = '1 when keys are loaded and revocation is fresh.';

export type UpstreamErrorKind = 'connect' | 'reset' | 'timeout' | 'tls' | 'other';

/**
 * The TLS counters (SPEC §11: handshakes refused before any request, where no decision is counted,
 * and certificate rotations). A gate's registry holds them, and so does a cluster primary's own,
 * whose admin listener no worker sees.
 */
export interface TlsMetrics {
  readonly tlsHandshakeFailures: client.Counter<'listener'>;
  readonly tlsReloads: client.Counter<'listener' | 'result'>;
}

export function tlsMetrics(registry: client.Registry): TlsMetrics {
  const r = [registry];
  return {
    tlsHandshakeFailures: new client.Counter({ name: 'jitgate_tls_handshake_failures_total', help: 'TLS handshakes that failed (no or untrusted client certificate, protocol errors), by listener.', labelNames: ['listener'], registers: r }),
    tlsReloads: new client.Counter({ name: 'jitgate_tls_reloads_total', help: 'Reloads of TLS files after a change on disk, by listener (proxy, admin: certificate, key, client CA bundle; upstream: upstream.tls) and result (ok, error).', labelNames: ['listener', 'result'], registers: r }),
  };
}

export class Metrics implements TlsMetrics {
  readonly registry: client.Registry;
  readonly decisions: client.Counter<'transport' | 'result' | 'reason'>;
  readonly decisionSeconds: FastHistogram<'transport'>;
  readonly upstreamSeconds: FastHistogram<'status_class'>;
  readonly upstreamErrors: client.Counter<'kind'>;
  readonly upstreamRetries: client.Counter;
  readonly tokenCacheHits: client.Counter;
  readonly tokenCacheMisses: client.Counter;
  readonly tokenCacheEntries: client.Gauge;
  readonly revocationEntries: client.Gauge<'source'>;
  readonly revocationSyncs: client.Counter<'source' | 'result'>;
  readonly revocationSyncSeconds: client.Histogram<'source'>;
  readonly revocationLastSync: client.Gauge<'source'>;
  readonly jwksKeys: client.Gauge<'issuer'>;
  readonly jwksRefreshes: client.Counter<'issuer' | 'result'>;
  readonly jwksRefreshSeconds: client.Histogram<'issuer'>;
  readonly jwksLastRefresh: client.Gauge<'issuer'>;
  readonly ready: client.Gauge;
  readonly statusLists: client.Gauge<'issuer'>;
  readonly statusListFetches: client.Counter<'issuer' | 'result'>;
  readonly statusListAge: client.Gauge<'uri'>;
  /** SPEC §12: revocations made because a token crossed anomaly.deny_threshold, by what was revoked and result (ok, error). */
  readonly anomalyRevocations: client.Counter<'revoke' | 'result'>;
  /** SPEC §12: refusals counted against a token (403 outside its grant, 400 with a valid token). */
  readonly anomalyRefusals: client.Counter<'status'>;
  /** SPEC §12: signed audit checkpoint lines written. */
  readonly auditCheckpoints: client.Counter;
  readonly tlsHandshakeFailures: client.Counter<'listener'>;
  readonly tlsReloads: client.Counter<'listener' | 'result'>;
  readonly revocationReloadRefused: client.Counter<'source' | 'reason'>;
  readonly limitRefusals: client.Counter<'limit'>;
  readonly configReloads: client.Counter<'result'>;
  // Fleet state on Redis (SPEC §9, docs/fleet.md).
  readonly redisConnected: client.Gauge<'connection'>;
  readonly redisErrors: client.Counter<'op'>;
  readonly redisSyncLag: client.Gauge;
  readonly redisChangeDelay: client.Histogram;
  readonly redisEntriesMissing: client.Gauge;
  readonly redisLogResets: client.Counter;
  readonly dpopReplayChecks: client.Counter<'guard' | 'result'>;

  /** transport → reason → bound counter child (taken up at scrape time). */
  readonly #bound = new Map<Transport, Map<Reason, client.Counter.Internal>>();
  readonly #boundLatency = new Map<Transport, HistogramChild>();
  /** Decisions counted since the last scrape, by transport (offset) and reason (index). */
  readonly #pending = new Float64Array(TRANSPORTS.length * REASON_CODES.length);
  readonly #transportOffset = new Map<Transport, number>(TRANSPORTS.map((t, i) => [t, i * REASON_CODES.length]));
  readonly #reasonIndex = new Map<Reason, number>(REASON_CODES.map((r, i) => [r, i]));

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = new client.Registry();
    this.registry = registry;
    const r = [registry];
    this.decisions = new client.Counter({
      name: 'jitgate_decisions_total',
      help: 'Decisions by transport, result (allow, deny, unavailable) and reason.',
      labelNames: ['transport', 'result', 'reason'],
      registers: r,
      collect: () => this.#takeUpPending(),
    });
    this.decisionSeconds = new FastHistogram({ name: 'jitgate_decision_duration_seconds', help: 'Time to decide, from request head to decision.', labelNames: ['transport'], buckets: LATENCY_BUCKETS, registers: r });
    this.upstreamSeconds = new FastHistogram({ name: 'jitgate_upstream_duration_seconds', help: 'Time from forwarding to the upstream response head.', labelNames: ['status_class'], buckets: LATENCY_BUCKETS, registers: r });
    this.upstreamErrors = new client.Counter({ name: 'jitgate_upstream_errors_total', help: 'Upstream failures by kind (connect, reset, timeout, tls, other).', labelNames: ['kind'], registers: r });
    new client.Counter({
      name: 'jitgate_log_dropped_lines_total',
      help: 'Log and audit lines dropped because the log destination fell 16 MiB behind (a stuck stdout or disk).',
      registers: r,
      collect() {
        this.reset();
        this.inc(droppedLogLines());
      },
    });
    this.upstreamRetries = new client.Counter({ name: 'jitgate_upstream_retries_total', help: 'Idempotent bodiless requests sent again after the upstream connection reset before answering.', registers: r });
    this.tokenCacheHits = new client.Counter({ name: 'jitgate_token_cache_hits_total', help: 'Verified-token cache hits.', registers: r });
    this.tokenCacheMisses = new client.Counter({ name: 'jitgate_token_cache_misses_total', help: 'Verified-token cache misses (full verification).', registers: r });
    this.tokenCacheEntries = new client.Gauge({ name: 'jitgate_token_cache_entries', help: 'Tokens in the verified-token cache.', registers: r });
    this.revocationEntries = new client.Gauge({ name: 'jitgate_revocation_entries', help: 'Revocation entries loaded, by source.', labelNames: ['source'], aggregator: MIN, registers: r });
    this.revocationSyncs = new client.Counter({ name: 'jitgate_revocation_syncs_total', help: 'Revocation source syncs by result (ok, not_modified, error).', labelNames: ['source', 'result'], registers: r });
    this.revocationSyncSeconds = new client.Histogram({ name: 'jitgate_revocation_sync_duration_seconds', help: 'Duration of revocation syncs.', labelNames: ['source'], registers: r });
    this.revocationLastSync = new client.Gauge({ name: 'jitgate_revocation_last_sync_timestamp_seconds', help: 'Last successful sync of each revocation source.', labelNames: ['source'], aggregator: MIN, registers: r });
    this.jwksKeys = new client.Gauge({ name: 'jitgate_jwks_keys', help: 'Keys in the current set, by issuer.', labelNames: ['issuer'], aggregator: MIN, registers: r });
    this.jwksRefreshes = new client.Counter({ name: 'jitgate_jwks_refreshes_total', help: 'JWKS fetches by issuer and result (ok, not_modified, error).', labelNames: ['issuer', 'result'], registers: r });
    this.jwksRefreshSeconds = new client.Histogram({ name: 'jitgate_jwks_refresh_duration_seconds', help: 'Duration of JWKS fetches.', labelNames: ['issuer'], registers: r });
    this.jwksLastRefresh = new client.Gauge({ name: 'jitgate_jwks_last_refresh_timestamp_seconds', help: 'Last successful JWKS fetch or load, by issuer.', labelNames: ['issuer'], aggregator: MIN, registers: r });
    this.ready = new client.Gauge({ name: 'jitgate_ready', help: READY_HELP, aggregator: MIN, registers: r });
    // Token Status List (SPEC §10). A cluster reports the sum of lists held, and the oldest copy of each list.
    this.statusLists = new client.Gauge({ name: 'jitgate_status_lists', help: 'Status lists held in memory, by issuer.', labelNames: ['issuer'], registers: r });
    this.statusListFetches = new client.Counter({ name: 'jitgate_status_list_fetches_total', help: 'Status list fetches by issuer and result (ok, not_modified, older, or the refusal reason).', labelNames: ['issuer', 'result'], registers: r });
    this.statusListAge = new client.Gauge({ name: 'jitgate_status_list_age_seconds', help: 'Seconds since each held status list was last confirmed current (200 or 304).', labelNames: ['uri'], aggregator: 'max', registers: r });
    this.anomalyRevocations = new client.Counter({ name: 'jitgate_anomaly_revocations_total', help: 'Revocations made because a token crossed anomaly.deny_threshold, by revoke (txn, jti, sub) and result (ok, error).', labelNames: ['revoke', 'result'], registers: r });
    this.anomalyRefusals = new client.Counter({ name: 'jitgate_anomaly_refusals_total', help: 'Refusals counted against a valid token for anomaly detection, by status (400, 403).', labelNames: ['status'], registers: r });
    this.auditCheckpoints = new client.Counter({ name: 'jitgate_audit_checkpoints_total', help: 'Signed checkpoint lines written to the audit chain.', registers: r });
    ({ tlsHandshakeFailures: this.tlsHandshakeFailures, tlsReloads: this.tlsReloads } = tlsMetrics(registry));
    this.revocationReloadRefused = new client.Counter({ name: 'jitgate_revocation_reload_refused_total', help: 'Revocation reloads refused (last good list kept), by source and reason (empty, torn_tail, no_valid_line, changing).', labelNames: ['source', 'reason'], registers: r });
    this.limitRefusals = new client.Counter({ name: 'jitgate_limit_refusals_total', help: 'Requests cut or refused by a limit: pool_wait, body_timeout, client_stalled, inflight_token, inflight_connection; connections closed at accept by limits.max_connections: connections.', labelNames: ['limit'], registers: r });
    this.configReloads = new client.Counter({ name: 'jitgate_reloads_total', help: 'SIGHUP reloads of key files and the revocation file, by result (ok, error).', labelNames: ['result'], registers: r });
    this.redisConnected = new client.Gauge({ name: 'jitgate_redis_connected', help: '1 while the Redis connection (command: writes, DPoP, sweep; follower: revocation changes) is ready.', labelNames: ['connection'], aggregator: MIN, registers: r });
    this.redisErrors = new client.Counter({ name: 'jitgate_redis_errors_total', help: 'Redis failures by operation (connect, resync, follow, write, replay, sweep, anomaly, nonce_key): lost connections, timeouts and error replies.', labelNames: ['op'], registers: r });
    this.redisSyncLag = new client.Gauge({ name: 'jitgate_redis_sync_lag_seconds', help: 'Seconds since the last successful read of the Redis revocation log (max_stale applies to this).', aggregator: 'max', registers: r });
    this.redisChangeDelay = new client.Histogram({ name: 'jitgate_redis_change_delay_seconds', help: 'From a revocation entering the Redis log (its stream id) to this gate applying it.', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: r });
    this.redisEntriesMissing = new client.Gauge({ name: 'jitgate_redis_entries_missing', help: 'Entries this gate held that a full load found missing from Redis (kept, and written back when Redis takes them), until a count finds Redis holding them all again; 0 when none.', aggregator: 'max', registers: r });
    this.redisLogResets = new client.Counter({ name: 'jitgate_redis_log_resets_total', help: 'Times the Redis revocation log was found deleted or with lower ids than already read (a reload followed).', registers: r });
    this.dpopReplayChecks = new client.Counter({ name: 'jitgate_dpop_replay_checks_total', help: 'DPoP proof jti checks by guard (redis) and result (fresh, replay, unavailable).', labelNames: ['guard', 'result'], registers: r });
    if (options.defaultMetrics !== false) {
      client.collectDefaultMetrics({ register: registry, prefix: 'jitgate_' });
      // prom-client names three gauges `…_total`, which `promtool check metrics` refuses (a counter suffix on a
      // gauge; found by a black-box probe). Each is the sum of its by-type gauge beside it, which stays.
      for (const name of ['active_handles', 'active_requests', 'active_resources']) registry.removeSingleMetric(`jitgate_nodejs_${name}_total`);
    }

    for (const t of TRANSPORTS) {
      const byReason = new Map<Reason, client.Counter.Internal>();
      for (const reason of REASON_CODES) byReason.set(reason, this.decisions.labels(t, resultOf(reason), reason));
      this.#bound.set(t, byReason);
      this.#boundLatency.set(t, this.decisionSeconds.labels(t));
    }
  }

  /** Hot path: one call per decision. */
  recordDecision(transport: Transport, decision: Decision, seconds: number): void {
    this.#pending[this.#transportOffset.get(transport)! + this.#reasonIndex.get(decision.reason)!]!++;
    this.#boundLatency.get(transport)!.observe(seconds);
  }

  /** Proxy-only outcomes after an allow (502/504) are counted as their own reason. */
  recordReason(transport: Transport, reason: Reason): void {
    this.#pending[this.#transportOffset.get(transport)! + this.#reasonIndex.get(reason)!]!++;
  }

  /** The counter's collect hook: pending counts become counter increments, then start again from zero. */
  #takeUpPending(): void {
    const pending = this.#pending;
    TRANSPORTS.forEach((t, ti) => {
      const byReason = this.#bound.get(t)!;
      REASON_CODES.forEach((reason, ri) => {
        const i = ti * REASON_CODES.length + ri;
        if (pending[i] !== 0) {
          byReason.get(reason)!.inc(pending[i]);
          pending[i] = 0;
        }
      });
    });
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

function resultOf(reason: Reason): 'allow' | 'deny' | 'unavailable' {
  if (reason === 'granted' || reason === 'public') return 'allow';
  if (reason === 'keys_unavailable' || reason === 'keys_stale' || reason === 'revocation_stale' || reason === 'internal_error' || reason === 'replay_check_unavailable') return 'unavailable';
  if (reason.startsWith('status_list_') && REASONS[reason].status === 503) return 'unavailable';
  return 'deny';
}
