/**
 * FastHistogram reports exactly what a prom-client Histogram reports for the same observations:
 * exposition text, JSON (what cluster workers send the primary) and the primary's aggregate.
 * Also the decision counter, which takes up its counts when scraped.
 */
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/core/decision.ts';
import { FastHistogram } from '../../src/observability/fast-histogram.ts';
import { Metrics } from '../../src/observability/metrics.ts';

const BUCKETS = [0.00005, 0.0001, 0.25, 1, 2.5];
const OBSERVATIONS: [string, string, number][] = [
  ['proxy', '2xx', 0.00003],
  ['ext_authz_grpc', '5xx', 0.0001], // exactly on a bound
  ['proxy', '2xx', 3], // above every bound: +Inf only
  ['proxy', '4xx', -1],
  ['ext_authz_grpc', '5xx', 0.3],
  ['proxy', '2xx', 0.1 + 0.2],
];

function pair(): { prom: client.Registry; fast: client.Registry; p: client.Histogram<'transport' | 'class'>; f: FastHistogram<'transport' | 'class'> } {
  const prom = new client.Registry();
  const fast = new client.Registry();
  const cfg = { name: 'h_seconds', help: 'help text', labelNames: ['transport', 'class'] as const, buckets: BUCKETS };
  const p = new client.Histogram({ ...cfg, labelNames: [...cfg.labelNames], registers: [prom] });
  const f = new FastHistogram({ ...cfg, registers: [fast] });
  // Bound in an order different from the order of first observation.
  for (const [t, c] of [['proxy', '4xx'], ['ext_authz_grpc', '5xx'], ['proxy', '2xx'], ['forward_auth', '1xx']] as const) {
    p.labels(t, c);
    f.labels(t, c);
  }
  return { prom, fast, p, f };
}

describe('FastHistogram', () => {
  it('exposes the same text and JSON as prom-client', async () => {
    const { prom, fast, p, f } = pair();
    for (const [t, c, v] of OBSERVATIONS) {
      p.labels(t, c).observe(v);
      f.labels(t, c).observe(v);
    }
    expect(await fast.metrics()).toBe(await prom.metrics());
    expect(await fast.getMetricsAsJSON()).toEqual(await prom.getMetricsAsJSON());
  });

  it('aggregates across workers like prom-client (cluster primary)', async () => {
    const a = pair();
    const b = pair();
    for (const [t, c, v] of OBSERVATIONS) {
      a.p.labels(t, c).observe(v);
      a.f.labels(t, c).observe(v);
      b.p.labels(c === '2xx' ? 'proxy' : t, c).observe(v * 2);
      b.f.labels(c === '2xx' ? 'proxy' : t, c).observe(v * 2);
    }
    const promAgg = client.AggregatorRegistry.aggregate([await a.prom.getMetricsAsJSON(), await b.prom.getMetricsAsJSON()] as never);
    const fastAgg = client.AggregatorRegistry.aggregate([await a.fast.getMetricsAsJSON(), await b.fast.getMetricsAsJSON()] as never);
    expect(await fastAgg.metrics()).toBe(await promAgg.metrics());
  });

  it('resets like prom-client', async () => {
    const { prom, fast, p, f } = pair();
    p.labels('proxy', '2xx').observe(1);
    f.labels('proxy', '2xx').observe(1);
    prom.resetMetrics();
    fast.resetMetrics();
    expect(await fast.metrics()).toBe(await prom.metrics());
    p.labels('proxy', '4xx').observe(0.2);
    f.labels('proxy', '4xx').observe(0.2);
    expect(await fast.metrics()).toBe(await prom.metrics());
  });

  it('refuses a wrong number of label values and non-finite values', () => {
    const { f } = pair();
    expect(() => f.labels('proxy')).toThrow(/expected 2 label values/);
    expect(() => f.labels('proxy', '2xx').observe(Number.NaN)).toThrow(TypeError);
  });
});

describe('Metrics decision counter', () => {
  it('counts every recorded decision once, however often it is scraped', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const allow = { kind: 'allow', reason: 'granted' } as Decision;
    const deny = { kind: 'deny', reason: 'expired' } as Decision;
    for (let i = 0; i < 3; i++) m.recordDecision('proxy', allow, 0.0001);
    m.recordDecision('ext_authz_grpc', deny, 0.0002);
    m.recordReason('proxy', 'upstream_timeout');
    const value = async (labels: Record<string, string>) =>
      (await m.decisions.get()).values.find((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))?.value;
    expect(await value({ transport: 'proxy', reason: 'granted', result: 'allow' })).toBe(3);
    expect(await value({ transport: 'ext_authz_grpc', reason: 'expired', result: 'deny' })).toBe(1);
    expect(await value({ transport: 'proxy', reason: 'upstream_timeout' })).toBe(1);
    m.recordDecision('proxy', allow, 0.0001);
    await m.metrics();
    expect(await value({ transport: 'proxy', reason: 'granted' })).toBe(4);
    expect(await m.metrics()).toContain('jitgate_decision_duration_seconds_count{transport="proxy"} 4');
  });
});
