/**
 * The cluster's /metrics sums (src/cluster/cluster-metrics.ts) with stand-in workers: real prom-client
 * registries behind a fake IPC channel, so each case controls who answers, who is silent and who is
 * gone. The real cluster (forked workers, SIGKILL, SIGSTOP) is in test/cli/serve.test.ts.
 */
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:cluster';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ClusterMetrics, type MetricsRequest } from '../../src/cluster/cluster-metrics.ts';
import { parseMetrics } from '../fixtures/servers.ts';

let nextId = 1;

/** A worker whose registry answers the primary's questions, unless it is silent or dead. */
class FakeWorker extends EventEmitter {
  readonly id = nextId++;
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'jitgate_requests_total', help: 'requests', labelNames: ['result'], registers: [this.registry] });
  readonly seconds = new Histogram({ name: 'jitgate_seconds', help: 'seconds', buckets: [0.1, 1], registers: [this.registry] });
  readonly keys = new Gauge({ name: 'jitgate_keys', help: 'keys', aggregator: 'min', registers: [this.registry] });
  readonly ready = new Gauge({ name: 'jitgate_ready', help: 'ready', aggregator: 'min', registers: [this.registry] });
  silent = false;
  dead = false;
  metrics!: ClusterMetrics;

  isDead(): boolean {
    return this.dead;
  }
  isConnected(): boolean {
    return !this.dead;
  }
  send(msg: MetricsRequest): void {
    if (this.silent) return;
    // Copied as node's IPC copies it (JSON): prom-client hands out its live value objects.
    void this.registry.getMetricsAsJSON().then((metrics) => setImmediate(() => this.metrics.answer(JSON.parse(JSON.stringify({ type: 'jitgate:metrics', id: msg.id, metrics })))));
  }
  die(): void {
    this.dead = true;
    this.emit('exit');
    this.metrics.gone(this as unknown as Worker);
  }
}

function cluster(n: number, timeoutMs = 100): { metrics: ClusterMetrics; workers: FakeWorker[] } {
  const metrics = new ClusterMetrics(timeoutMs);
  const workers = Array.from({ length: n }, () => {
    const w = new FakeWorker();
    w.metrics = metrics;
    w.keys.set(2);
    w.ready.set(1);
    return w;
  });
  return { metrics, workers };
}

async function scrape(metrics: ClusterMetrics, workers: (FakeWorker | undefined)[], ready = true): Promise<Map<string, number>> {
  const r = await metrics.collect(workers as unknown as Worker[], Promise.resolve(ready));
  expect(r.contentType).toMatch(/^text\/plain/);
  return parseMetrics(r.text);
}

describe('cluster /metrics', () => {
  it('case=answering workers: counters and histograms summed, min gauges at their minimum, every worker answered', async () => {
    const { metrics, workers } = cluster(2);
    workers[0]!.requests.labels('allow').inc(3);
    workers[1]!.requests.labels('allow').inc(4);
    workers[1]!.requests.labels('deny').inc(1);
    workers[0]!.seconds.observe(0.05);
    workers[1]!.seconds.observe(0.5);
    workers[1]!.keys.set(1);
    const m = await scrape(metrics, workers);
    expect(m.get('jitgate_requests_total{result="allow"}')).toBe(7);
    expect(m.get('jitgate_requests_total{result="deny"}')).toBe(1);
    expect(m.get('jitgate_seconds_count')).toBe(2);
    expect(m.get('jitgate_seconds_bucket{le="0.1"}')).toBe(1);
    expect(m.get('jitgate_keys')).toBe(1);
    expect(m.get('jitgate_cluster_workers{state="answered"}')).toBe(2);
    expect(m.get('jitgate_cluster_workers{state="missing"}')).toBe(0);
  });

  it('case=a replaced worker: its last counts stay in the sum (no counter reset), its gauges do not', async () => {
    const { metrics, workers } = cluster(2);
    workers[0]!.requests.labels('allow').inc(10);
    workers[0]!.seconds.observe(0.5);
    workers[0]!.keys.set(0); // its state, not history: gone with it
    workers[1]!.requests.labels('allow').inc(5);
    expect((await scrape(metrics, workers)).get('jitgate_requests_total{result="allow"}')).toBe(15);

    workers[0]!.die();
    const replacement = new FakeWorker();
    replacement.metrics = metrics;
    replacement.keys.set(2);
    replacement.requests.labels('allow').inc(1);
    const m = await scrape(metrics, [replacement, workers[1]]);
    expect(m.get('jitgate_requests_total{result="allow"}')).toBe(16);
    expect(m.get('jitgate_seconds_count')).toBe(1);
    expect(m.get('jitgate_keys')).toBe(2);
    expect(m.get('jitgate_cluster_workers{state="answered"}')).toBe(2);

    // A second replacement: both gone workers' counts are kept.
    workers[1]!.die();
    const m2 = await scrape(metrics, [replacement, undefined]);
    expect(m2.get('jitgate_requests_total{result="allow"}')).toBe(16);
    expect(m2.get('jitgate_cluster_workers{state="missing"}')).toBe(1);
  });

  it('case=a worker that does not answer: the scrape still answers, that worker counted at its last answer and named missing', async () => {
    const { metrics, workers } = cluster(2);
    workers[0]!.requests.labels('allow').inc(2);
    workers[1]!.requests.labels('allow').inc(3);
    await scrape(metrics, workers);
    workers[1]!.silent = true;
    workers[1]!.requests.labels('allow').inc(100); // counted after its last answer: not seen
    workers[0]!.requests.labels('allow').inc(1);
    const started = Date.now();
    const m = await scrape(metrics, workers, false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(m.get('jitgate_requests_total{result="allow"}')).toBe(6);
    expect(m.get('jitgate_cluster_workers{state="missing"}')).toBe(1);
    expect(m.get('jitgate_ready')).toBe(0);
    // Its gauges are not reported while it is silent: the min is the answering worker's.
    workers[1]!.keys.set(0);
    expect((await scrape(metrics, workers)).get('jitgate_keys')).toBe(2);

    workers[1]!.silent = false;
    const back = await scrape(metrics, workers);
    expect(back.get('jitgate_requests_total{result="allow"}')).toBe(106);
    expect(back.get('jitgate_cluster_workers{state="missing"}')).toBe(0);
  });

  it('case=a worker dies while a scrape waits for it: counted once in that scrape and once after', async () => {
    const { metrics, workers } = cluster(2, 200);
    workers[0]!.requests.labels('allow').inc(4);
    workers[1]!.requests.labels('allow').inc(6);
    await scrape(metrics, workers);
    workers[1]!.silent = true;
    const pending = metrics.collect(workers as unknown as Worker[], Promise.resolve(true));
    workers[1]!.die();
    expect(parseMetrics((await pending).text).get('jitgate_requests_total{result="allow"}')).toBe(10);
    expect((await scrape(metrics, [workers[0], undefined])).get('jitgate_requests_total{result="allow"}')).toBe(10);
  });

  it('case=jitgate_ready is the cluster readiness given, not any worker\'s', async () => {
    const { metrics, workers } = cluster(2);
    expect((await scrape(metrics, workers, true)).get('jitgate_ready')).toBe(1);
    expect((await scrape(metrics, workers, false)).get('jitgate_ready')).toBe(0);
    workers[0]!.ready.set(0);
    expect((await scrape(metrics, workers, true)).get('jitgate_ready')).toBe(1);
  });

  it('case=a worker whose registry fails to collect is missing, not a failed scrape', async () => {
    const { metrics, workers } = cluster(2);
    workers[0]!.requests.labels('allow').inc(1);
    await scrape(metrics, workers);
    workers[0]!.send = (msg: MetricsRequest) => setImmediate(() => metrics.answer({ type: 'jitgate:metrics', id: msg.id, metrics: undefined }));
    const m = await scrape(metrics, workers);
    expect(m.get('jitgate_cluster_workers{state="missing"}')).toBe(1);
    expect(m.get('jitgate_requests_total{result="allow"}')).toBe(1);
  });
});
