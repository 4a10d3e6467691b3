/**
 * The bench's verdict on the cached-allow target: taken from the median of adjacent (plain, gate)
 * slice pairs when a run has them, never from a perturbed slice, and from the table rows otherwise.
 */
import { describe, expect, it } from 'vitest';
import type { Row } from '../../bench/macro/report.ts';
import { evaluateTargets, SOAK_MINUTES_JUDGED, type PairSlice } from '../../bench/macro/targets.ts';

function row(id: string, rps: number, p99: number, cpu: number): Row {
  return { id, title: id, kind: 'http', rps: { mean: rps, stddev: 0, samples: [] }, latency: { p50: 1, p99, p999: p99 * 2 } as Row['latency'], total: rps * 10, statuses: { '200': rps * 10 }, unexpected: 0, errors: 0, serverCpuUsPerReq: cpu, problems: [] };
}

function pair(gate: number, plain: number, problems: string[] = [], p99 = 6.2, refP99 = 6.0, ref = 'plain-proxy'): PairSlice {
  return { ref, rps: gate, refRps: plain, ratio: gate / plain, p99, refP99, cpuUsPerReq: 50, refCpuUsPerReq: 48, problems };
}

// The table rows alone say 0.60 × (measured a minute apart while the machine slowed down).
const rows = new Map([
  ['plain-proxy', row('plain-proxy', 20_000, 6.0, 45)],
  ['allow-hot', row('allow-hot', 12_000, 9.0, 60)],
]);
const verdict = (paired: Record<string, PairSlice[]>) => evaluateTargets(rows, undefined, paired).results.find((r) => r.name === 'cached allow (allow-hot)')!;

describe('cached-allow verdict', () => {
  it('without pairs: the table rows decide', () => {
    const v = verdict({});
    expect(v.met).toBe(false);
    expect(v.detail).toMatch(/^0\.600 × plain proxy/);
  });

  it('with pairs: the median pair ratio and p99 delta decide, the range is shown', () => {
    const v = verdict({ 'allow-hot': [pair(19_000, 20_000), pair(9_000, 10_000), pair(15_200, 16_000)] });
    expect(v.met).toBe(true);
    expect(v.detail).toContain('median of 3 adjacent pairs 0.950 × plain proxy req/s');
    expect(v.detail).toContain('pairs 0.900–0.950');
    expect(v.detail).toContain('p99 Δ +0.200 ms');
  });

  it('a median below 0.95 is not met; a perturbed slice voids the verdict', () => {
    expect(verdict({ 'allow-hot': [pair(18_000, 20_000), pair(18_600, 20_000), pair(20_000, 20_000)] }).met).toBe(false);
    const perturbed = verdict({ 'allow-hot': [pair(20_000, 20_000), pair(20_000, 20_000, ['other processes used 0.40 cores'])] });
    expect(perturbed.met).toBe(false);
    expect(perturbed.detail).toContain('1 perturbed slices');
  });
});

describe('issue 20 verdicts judged on pairs', () => {
  // Table rows measured a minute apart: the rotating row looks 0.70 × and the replay 0.80 × the 403.
  const coldRows = new Map([
    ['allow-10k-verify', row('allow-10k-verify', 4_900, 20, 160)],
    ['sync-gate-10k', row('sync-gate-10k', 7_000, 14, 130)],
    ['deny-401-bad-signature', row('deny-401-bad-signature', 32_000, 4, 28)],
    ['deny-403', row('deny-403', 40_000, 3, 22)],
  ]);
  const judge = (name: string, paired: Record<string, PairSlice[]>) => evaluateTargets(coldRows, undefined, paired).results.find((r) => r.name.startsWith(name))!;

  it('rotating tokens: without pairs the rows decide; with pairs the median rate ratio and p99 ratio do', () => {
    expect(judge('10,000 rotating tokens vs the minimal', {}).met).toBe(false);
    const ok = judge('10,000 rotating tokens vs the minimal', { 'allow-10k-verify': [pair(6_900, 7_000, [], 15, 14, 'sync-gate-10k'), pair(6_500, 7_000, [], 16, 14, 'sync-gate-10k'), pair(7_100, 7_000, [], 13, 14, 'sync-gate-10k')] });
    expect(ok.met).toBe(true);
    expect(ok.detail).toContain('median of 3 adjacent pairs 0.986 × the minimal gate');
    expect(ok.detail).toContain('p99 1.07 ×');
    expect(ok.detail).toContain('table rows 4,900 vs 7,000 req/s = 0.700 ×');
    // The rate alone is not enough: a median p99 over 1.2 × fails it.
    expect(judge('10,000 rotating tokens vs the minimal', { 'allow-10k-verify': [pair(7_000, 7_000, [], 20, 14), pair(7_000, 7_000, [], 18, 14)] }).met).toBe(false);
  });

  it('forged replay: the median pair ratio against the 403 decides', () => {
    expect(judge('401 for a forged token seen before', {}).met).toBe(false);
    expect(judge('401 for a forged token seen before', { 'deny-401-bad-signature': [pair(39_000, 40_000), pair(37_000, 40_000)] }).met).toBe(true);
    expect(judge('401 for a forged token seen before', { 'deny-401-bad-signature': [pair(34_000, 40_000), pair(35_000, 40_000)] }).met).toBe(false);
  });
});

describe('ext_authz gRPC verdict', () => {
  const grpcVerdict = (entries: [string, number][]) =>
    evaluateTargets(new Map(entries.map(([id, rps]) => [id, row(id, rps, 5, 30)])), undefined, {}).results.find((r) => r.name.startsWith('ext_authz gRPC Check'));

  it('is judged on the h2load pair when it ran, with the Node clients pair beside it', () => {
    const v = grpcVerdict([
      ['ext-authz-http', 27_000],
      ['ext-authz-grpc', 12_000],
      ['ext-authz-http-h2load', 25_000],
      ['ext-authz-grpc-h2load', 30_000],
    ])!;
    expect(v.name).toContain('h2load on both');
    expect(v.met).toBe(true);
    expect(v.detail).toMatch(/^30,000 vs 25,000 checks\/s = 1\.200 ×/);
    expect(v.detail).toContain('with the Node clients (grpc-load.ts, autocannon) 12,000 vs 27,000 checks/s = 0.444 ×');
  });

  it('falls back to the Node clients pair, and says so, without h2load', () => {
    const v = grpcVerdict([
      ['ext-authz-http', 27_000],
      ['ext-authz-grpc', 12_000],
    ])!;
    expect(v.met).toBe(false);
    expect(v.detail).toContain('h2load not installed');
  });
});

describe('soak verdict', () => {
  const soakVerdict = (minutes: number, settledMB: number, endMB: number) =>
    evaluateTargets(new Map(), { minutes, readyMB: 140, startMB: 200, settledMB, settledAtSec: minutes * 30, endMB, maxMB: endMB, samples: [] } as never, {}).results.find((r) => r.name.startsWith('RSS flat'))!;

  it('a soak shorter than SOAK_MINUTES_JUDGED gives the numbers without a verdict', () => {
    const v = soakVerdict(5, 300, 302);
    expect(v.met).toBeUndefined();
    expect(v.name).toContain(`a soak of ${SOAK_MINUTES_JUDGED} minutes or more judges`);
  });

  it('a long enough soak is judged: ≤ max(10 MB, 10 %) growth after half-time', () => {
    expect(soakVerdict(12, 345, 361).met).toBe(true);
    expect(soakVerdict(12, 300, 345).met).toBe(false);
  });
});
