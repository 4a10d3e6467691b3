/**
 * The admin listener (SPEC §8) on its own loopback port: /healthz, /readyz and /metrics scraped
 * and parsed while real requests go through the proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, parseMetrics, send, startGateInProcess, startGateWithUpstream, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';
import { ISSUER_A } from '../fixtures/tokens.ts';

let up: RecordingUpstream;
let gate: InProcessGate;

beforeAll(async () => ({ up, gate } = await startGateWithUpstream()));
afterAll(() => closeAll(gate, up));

async function scrape(): Promise<Map<string, number>> {
  const res = await send(gate.adminUrl, '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(res.headers['cache-control']).toBe('no-store');
  return parseMetrics(res.text);
}

const decisions = (result: string, reason: string) => `jitgate_decisions_total{transport="proxy",result="${result}",reason="${reason}"}`;

describe('admin listener', () => {
  it('case=/healthz → 200 {"status":"ok"}, no-store', async () => {
    const res = await send(gate.adminUrl, '/healthz');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ status: 'ok' });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('case=/readyz → 200 once keys and revocation are loaded', async () => {
    const res = await send(gate.adminUrl, '/readyz');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ status: 'ready' });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('case=unknown path → 404 JSON; POST /healthz → 405', async () => {
    const res = await send(gate.adminUrl, '/nope');
    expect(res.status).toBe(404);
    // Every answer names an error and a reason (README), the admin listener's too.
    expect(JSON.parse(res.text)).toEqual({ error: 'not_found', reason: 'unknown_path' });
    expect(res.headers['cache-control']).toBe('no-store');
    const post = await send(gate.adminUrl, '/healthz', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect(JSON.parse(post.text)).toEqual({ error: 'method_not_allowed', reason: 'method_not_allowed' });
  });

  it('case=the revocation API is mounted (refused without admin.token_file)', async () => {
    const res = await send(gate.adminUrl, '/revocations');
    expect(res.status).toBe(403);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('case=/metrics counters move with proxy traffic', async () => {
    const m0 = await scrape();
    const token = await gate.token();
    const auth = { authorization: `Bearer ${token}` };
    await send(gate.url, '/orders/42', { headers: auth });
    await send(gate.url, '/orders/42', { headers: auth });
    await send(gate.url, '/orders/43', { headers: auth });
    await send(gate.url, '/orders/42');
    await send(gate.url, '/public/x');
    const m1 = await scrape();
    const delta = (k: string) => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
    expect(delta(decisions('allow', 'granted'))).toBe(2);
    expect(delta(decisions('allow', 'public'))).toBe(1);
    expect(delta(decisions('deny', 'path_not_granted'))).toBe(1);
    expect(delta(decisions('deny', 'missing_token'))).toBe(1);
    expect(delta('jitgate_decision_duration_seconds_count{transport="proxy"}')).toBe(5);
    expect(delta('jitgate_upstream_duration_seconds_count{status_class="2xx"}')).toBe(3);
    // One signature verification, then cache hits for the same token.
    expect(delta('jitgate_token_cache_misses_total')).toBe(1);
    expect(delta('jitgate_token_cache_hits_total')).toBe(2);
    expect(m1.get('jitgate_token_cache_entries')).toBeGreaterThanOrEqual(1);
    expect(m1.get('jitgate_ready')).toBe(1);
    expect(m1.get(`jitgate_jwks_keys{issuer="${ISSUER_A}"}`)).toBe(2);
    expect(m1.get('jitgate_process_resident_memory_bytes')).toBeGreaterThan(0);
  });
});

describe('admin listener, not ready', () => {
  it('case=remote keys not loaded → /readyz 503 with the problem, /healthz still 200, jitgate_ready 0', async () => {
    const g = await startGateInProcess(up.url, (c) => {
      c.issuers[1] = { issuer: 'https://unreachable.example', jwks_uri: 'http://127.0.0.1:9/jwks.json', jwks_timeout: '200ms' };
    });
    try {
      const ready = await send(g.adminUrl, '/readyz');
      expect(ready.status).toBe(503);
      const body = JSON.parse(ready.text) as { status: string; problems: string[] };
      expect(body.status).toBe('not_ready');
      expect(body.problems.join('\n')).toMatch(/https:\/\/unreachable\.example/);
      expect((await send(g.adminUrl, '/healthz')).status).toBe(200);
      const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
      expect(m.get('jitgate_ready')).toBe(0);
    } finally {
      await g.close();
    }
  });
});
