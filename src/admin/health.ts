/**
 * The gate's state as operators see it: readiness for /readyz and the gauges /metrics reports.
 * Gauges that mirror state (cache size, key-set size, ready) are set when someone scrapes rather
 * than on every change, so the request path never pays for them (STYLE habit 8).
 */
import type { Gate, Readiness } from '../gate.ts';
import type { Metrics } from '../observability/metrics.ts';

/** What the admin listener asks; in cluster mode the primary answers for all workers. */
export interface AdminSource {
  readiness(): Promise<Readiness>;
  /** Prometheus exposition text and its content type. */
  metrics(): Promise<{ readonly contentType: string; readonly text: string }>;
}

/** The source for a single process: its own gate and registry. */
export function localAdminSource(gate: Gate, metrics: Metrics, draining: () => boolean): AdminSource {
  const refresh = gaugeRefresher(gate, metrics);
  return {
    readiness: async () => withDraining(gate.readiness(), draining()),
    metrics: async () => {
      refresh(draining());
      return { contentType: metrics.registry.contentType, text: await metrics.registry.metrics() };
    },
  };
}

/** A draining process is alive but must get no new traffic (a Kubernetes endpoint drops it). */
export function withDraining(r: Readiness, draining: boolean): Readiness {
  if (!draining) return r;
  return { ready: false, problems: ['shutting down', ...r.problems] };
}

/**
 * Returns a function that copies the gate's state into the gauges. The token cache keeps plain
 * counts (it must not depend on metrics); counters only go up, so each scrape adds the difference.
 */
export function gaugeRefresher(gate: Gate, metrics: Metrics): (draining: boolean) => void {
  let hits = 0;
  let misses = 0;
  const ageLabels = new Set<string>();
  return (draining) => {
    const s = gate.cache.stats;
    if (s.hits > hits) metrics.tokenCacheHits.inc(s.hits - hits);
    if (s.misses > misses) metrics.tokenCacheMisses.inc(s.misses - misses);
    hits = s.hits;
    misses = s.misses;
    metrics.tokenCacheEntries.set(gate.cache.size);
    for (const k of gate.issuerKeys) metrics.jwksKeys.labels(k.issuer).set(k.size);
    refreshStatusListGauges(gate, metrics, ageLabels);
    metrics.ready.set(!draining && gate.readiness().ready ? 1 : 0);
  };
}

/**
 * Lists held per issuer and the age of each (SPEC §10); a list dropped for disuse leaves the age
 * gauge. Two issuers may name the same URI: its age is the oldest copy held, so a stale copy is
 * never hidden behind a fresh one (a review found the last issuer looked at overwriting the other).
 * The walk is bounded by `max_lists` per issuer. A list evicted or dropped leaves its issuer's map, so
 * `labelled` (the URIs given an age at the previous scrape) says which series to remove.
 */
function refreshStatusListGauges(gate: Gate, metrics: Metrics, labelled: Set<string>): void {
  const now = gate.clock.nowMs();
  const ages = new Map<string, number | undefined>();
  for (const lists of gate.statusLists) {
    let held = 0;
    for (const e of lists.entries()) {
      const age = e.ageMs(now);
      const known = ages.get(e.uri);
      if (age !== undefined) held++;
      if (age !== undefined && (known === undefined || age > known)) ages.set(e.uri, age);
      else if (!ages.has(e.uri)) ages.set(e.uri, undefined);
    }
    metrics.statusLists.labels(lists.issuer).set(held);
  }
  for (const uri of labelled) {
    if (ages.get(uri) !== undefined) continue;
    metrics.statusListAge.remove(uri);
    labelled.delete(uri);
  }
  for (const [uri, age] of ages) {
    if (age === undefined) continue;
    metrics.statusListAge.labels(uri).set(age / 1000);
    labelled.add(uri);
  }
}
