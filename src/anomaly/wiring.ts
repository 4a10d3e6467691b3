/**
 * Runtime wiring of the anomaly watch (SPEC §12): on the gate, writing through the gate's
 * revocation store. Kept here so runtime.ts only calls in.
 */
import { gateRevocationStore } from '../admin/revocations-api.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import type { Config } from '../config/schema.ts';
import type { Gate } from '../gate.ts';
import type { AuditLog } from '../observability/audit.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Logger } from 'pino';
import { RedisRefusalCounter } from '../fleet/redis-refusal-counter.ts';
import { AnomalyWatch, type RevocationWriter } from './anomaly-watch.ts';
import { countsInRedis, type RefusalCounting } from './refusal-counter.ts';

export interface WiringDeps {
  readonly config: Config;
  readonly gate: Gate;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/**
 * `anomaly` configured: every decision is shown to an AnomalyWatch. `writer` is the cluster
 * primary's (a worker); by default the store `POST /revocations` writes through, so a durable or
 * fleet-wide store there is one here too. Refusals are counted where the revocation would reach:
 * in Redis with `revocation.redis` (every gate on it counts together), else at `counter`, the
 * primary's for a cluster worker, else in this process.
 */
export function watchAnomalies(d: WiringDeps, writer?: RevocationWriter, counter?: RefusalCounting): AnomalyWatch | undefined {
  const cfg = d.config.anomaly;
  if (cfg === undefined) return undefined;
  const watch = new AnomalyWatch(cfg, {
    gate: d.gate,
    store: writer ?? gateRevocationStore(d.gate),
    audit: d.audit,
    metrics: d.metrics,
    logger: d.logger,
    clock: d.clock ?? systemClock,
    counter: fleetCounter(d) ?? counter,
  });
  d.gate.observeRefusals(watch);
  return watch;
}

/** With revocation.redis a revocation is fleet-wide, so the count that triggers it is too (SPEC §9, §12). */
function fleetCounter(d: WiringDeps): RefusalCounting | undefined {
  const cfg = d.config.anomaly;
  const fleet = d.gate.fleet;
  if (cfg === undefined || fleet === undefined || !countsInRedis(d.config)) return undefined;
  const errors = d.metrics.redisErrors.labels('anomaly');
  return new RedisRefusalCounter(fleet.link, fleet.keys, { threshold: cfg.deny_threshold, windowMs: cfg.window, onError: () => errors.inc() });
}
