/**
 * The cluster's `/metrics`: every worker's registry (asked over IPC), summed by each metric's
 * aggregator (prom-client's `AggregatorRegistry.aggregate`).
 *
 * Summing live workers alone breaks the two promises a Prometheus counter makes. A replaced worker
 * starts from zero, so the cluster's sum drops and Prometheus reads a counter reset (`rate()` then
 * counts the whole remaining sum as new); and one worker that does not answer left nothing honest
 * to sum, so the scrape failed. Here the counters and histograms a gone worker last reported are
 * kept and added to every later sum, and a worker that does not answer in time is counted at its
 * last answer: a cluster counter never goes down. Gauges are state, not history: only answering
 * workers' gauges are aggregated. `jitgate_cluster_workers{state}` says how many answered, and
 * `jitgate_ready` is the cluster's own readiness (what `/readyz` says), not a worker's. The primary's
 * own counters (its admin listener's TLS handshakes and reloads) are added to the sum.
 * What a worker counted after its last answer and before it died is lost (docs/operations.md).
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import { READY_HELP, tlsMetrics, type TlsMetrics } from '../observability/metrics.ts';

/** One registry's metrics as `Registry.getMetricsAsJSON` gives them (what a worker sends). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
type Metric = MetricsJson[number];

export interface MetricsRequest {
  readonly type: 'jitgate:metrics';
  readonly id: number;
}
export interface MetricsAnswer {
  readonly type: 'jitgate:metrics';
  readonly id: number;
  /** Undefined when the worker could not collect its registry. */
  readonly metrics: MetricsJson | undefined;
}

/** Kinds whose values only grow within one process, so a gone worker's last values stay in the sum. */
const MONOTONIC: ReadonlySet<string> = new Set(['counter', 'histogram']);

export class ClusterMetrics {
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, (m: MetricsJson | undefined) => void>();
  #lastId = 0;
  /** Each live worker's last answer, by cluster worker id. */
  readonly #last = new Map<number, MetricsJson>();
  /** The counters and histograms of every worker gone so far, summed. */
  readonly #retired = new RetiredCounts();
  readonly #primary = new Registry();
  /** The primary's admin listener counts its TLS handshakes and reloads here. */
  readonly tls: TlsMetrics = tlsMetrics(this.#primary);

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** One worker's registry over IPC; undefined if it is gone, exits meanwhile, fails or stays silent. */
  ask(worker: Worker | undefined): Promise<MetricsJson | undefined> {
    if (worker === undefined || worker.isDead() || !worker.isConnected()) return Promise.resolve(undefined);
    const id = ++this.#lastId;
    return new Promise((resolve) => {
      const done = (m: MetricsJson | undefined): void => {
        clearTimeout(timer);
        worker.off('exit', onExit);
        this.#pending.delete(id);
        if (m !== undefined && !worker.isDead()) this.#last.set(worker.id, m);
        resolve(m);
      };
      const onExit = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), this.#timeoutMs);
      worker.once('exit', onExit);
      this.#pending.set(id, done);
      worker.send({ type: 'jitgate:metrics', id } satisfies MetricsRequest);
    });
  }

  answer(a: MetricsAnswer): void {
    this.#pending.get(a.id)?.(Array.isArray(a.metrics) ? a.metrics : undefined);
  }

  /** A worker exited: what it last reported of its counters and histograms stays in every later sum. */
  gone(worker: Worker): void {
    const last = this.#last.get(worker.id);
    this.#last.delete(worker.id);
    if (last !== undefined) this.#retired.add(last);
  }

  /** The cluster's exposition text: answering workers, the last counts of silent ones, the gone ones' counts. */
  async collect(workers: readonly (Worker | undefined)[], ready: Promise<boolean>): Promise<{ contentType: string; text: string }> {
    // Taken together, before anything else can run: a worker that dies while this scrape waits is in
    // exactly one of them (its answer or its last counts here; the gone ones' sum from the next scrape on).
    const retired = this.#retired.json();
    const last = new Map(this.#last);
    const answers = await Promise.all(workers.map((w) => this.ask(w)));
    const isReady = await ready;
    const parts: MetricsJson[] = [retired];
    let missing = 0;
    answers.forEach((m, i) => {
      if (m !== undefined) return void parts.push(m);
      missing++;
      const before = workers[i] === undefined ? undefined : last.get(workers[i]!.id);
      if (before !== undefined) parts.push(monotonic(before));
    });
    const own = new Registry();
    new Gauge({ name: 'jitgate_ready', help: READY_HELP, registers: [own] }).set(isReady ? 1 : 0);
    const states = new Gauge({ name: 'jitgate_cluster_workers', help: 'Workers by whether they answered this scrape (answered) or are counted at their last answer (missing).', labelNames: ['state'], registers: [own] });
    states.labels('answered').set(workers.length - missing);
    states.labels('missing').set(missing);
    const cluster = await own.getMetricsAsJSON();
    const registry = AggregatorRegistry.aggregate([...parts.map(withoutReady), cluster, await this.#primary.getMetricsAsJSON()]);
    return { contentType: registry.contentType, text: await registry.metrics() };
  }
}

function monotonic(m: MetricsJson): MetricsJson {
  return m.filter((x: Metric) => MONOTONIC.has(String(x.type)));
}

/** A worker's own `jitgate_ready`: the cluster states its readiness once, from /readyz's answer. */
function withoutReady(m: MetricsJson): MetricsJson {
  return m.filter((x: Metric) => x.name !== 'jitgate_ready');
}

/** The worker's side: its state gauges brought up to date, then its registry sent to the primary. */
export function answerMetrics(id: number, refresh: () => void, registry: Registry): void {
  refresh();
  const send = (metrics: MetricsJson | undefined): void => {
    if (process.connected) process.send!({ type: 'jitgate:metrics', id, metrics } satisfies MetricsAnswer);
  };
  registry.getMetricsAsJSON().then(send, () => send(undefined));
}

/** Counters and histograms summed by name, series name (a histogram's _bucket, _sum, _count) and labels. */
class RetiredCounts {
  readonly #byName = new Map<string, { metric: Metric; values: Map<string, Metric['values'][number]> }>();

  add(metrics: MetricsJson): void {
    for (const m of monotonic(metrics)) {
      let e = this.#byName.get(m.name);
      if (e === undefined) this.#byName.set(m.name, (e = { metric: m, values: new Map() }));
      for (const v of m.values) {
        const key = `${(v as { metricName?: string }).metricName ?? m.name}${JSON.stringify(Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
        const before = e.values.get(key);
        e.values.set(key, { ...v, value: (before?.value ?? 0) + v.value });
      }
    }
  }

  json(): MetricsJson {
    return [...this.#byName.values()].map((e) => ({ ...e.metric, values: [...e.values.values()] }));
  }
}
