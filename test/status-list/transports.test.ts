/**
 * Token Status List on every transport (SPEC §10, §7): ext_authz HTTP, ext_authz gRPC and forward-auth
 * over a FixedClock gate, the proxy as `startJitgate` runs it (metrics, /readyz, audit lines), and a
 * `workers: 2` cluster where each worker keeps its own copy of the list. Lists come from a real HTTP
 * server on loopback.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../fixtures/gate.ts';
import { parseMetrics, send, spawnGate, startGateInProcess, startRecordingUpstream, tokenNow, writeGateConfig, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';
import { ISSUER_A, ISSUER_B, NOW, sign } from '../fixtures/tokens.ts';
import { checkRequest, GrpcClient, httpCall, startHarness, type Harness } from '../transports/ext-authz/helpers.ts';
import { eventually, statusClaim, statusToken } from './helpers.ts';
import { cliList, StatusListServer } from './list-server.ts';

const LIST = '/status/1';
let server: StatusListServer;

beforeAll(async () => {
  server = await new StatusListServer().start();
});
afterAll(() => server.stop());

describe('ext_authz HTTP, gRPC and forward-auth', () => {
  let keys: TestKeys;
  let h: Harness;
  let grpc: GrpcClient;

  beforeAll(async () => {
    keys = await makeTestKeys();
    h = await startHarness(keys, (c) => {
      c.issuers[0].status_list = { allowed_uris: [server.uri('/status/'), server.uri('/down/')], timeout: '500ms' };
    });
    grpc = new GrpcClient(h.grpcPort);
    server.lists.set(LIST, await cliList(keys.a, { uri: server.uri(LIST), bits: 2, size: 32, iat: NOW, statuses: new Map([[1, 1], [2, 2]]) }));
    server.modes.set('/down/1', { kind: 'status', status: 503 });
  });
  afterAll(async () => {
    grpc.close();
    await h.close();
    await rm(h.dir, { recursive: true, force: true });
  });

  const auth = async (uri: string, idx: number): Promise<string[]> => ['authorization', `Bearer ${await statusToken(keys.a, uri, idx)}`];

  it('HTTP service: VALID → 200, INVALID → 401 revoked, SUSPENDED → 401 suspended, list unavailable → 403 (never a 5xx)', async () => {
    expect((await httpCall(h.httpPort, 'GET', '/authz/orders/42', await auth(server.uri(LIST), 0))).status).toBe(200);
    const revoked = await httpCall(h.httpPort, 'GET', '/authz/orders/42', await auth(server.uri(LIST), 1));
    expect(revoked.status).toBe(401);
    expect(JSON.parse(revoked.body)).toEqual({ error: 'invalid_token', reason: 'revoked' });
    expect(revoked.headers['www-authenticate']).toContain('error_description="revoked"');
    const suspended = await httpCall(h.httpPort, 'GET', '/authz/orders/42', await auth(server.uri(LIST), 2));
    expect([suspended.status, JSON.parse(suspended.body).reason]).toEqual([401, 'suspended']);
    const down = await httpCall(h.httpPort, 'GET', '/authz/orders/42', await auth(server.uri('/down/1'), 0));
    expect([down.status, JSON.parse(down.body).reason]).toEqual([403, 'status_list_unavailable']);
    const outside = await httpCall(h.httpPort, 'GET', '/authz/orders/42', await auth(server.uri('/elsewhere/1'), 0));
    expect([outside.status, JSON.parse(outside.body).reason]).toEqual([401, 'status_uri_not_allowed']);
  });

  it('gRPC Check: allow code 0; revoked/suspended code 16; unavailable code 14 — always an OK RPC', async () => {
    const check = async (uri: string, idx: number) => {
      const token = await statusToken(keys.a, uri, idx);
      return grpc.check(checkRequest('GET', '/orders/42', { authorization: `Bearer ${token}` }));
    };
    expect((await check(server.uri(LIST), 0)).status?.code).toBe(0);
    const revoked = await check(server.uri(LIST), 1);
    expect(revoked.status?.code).toBe(16);
    expect(JSON.parse(revoked.denied_response!.body).reason).toBe('revoked');
    const suspended = await check(server.uri(LIST), 2);
    expect([suspended.status?.code, JSON.parse(suspended.denied_response!.body).reason]).toEqual([16, 'suspended']);
    const down = await check(server.uri('/down/1'), 0);
    expect([down.status?.code, down.denied_response?.status?.code, JSON.parse(down.denied_response!.body).reason]).toEqual([14, 503, 'status_list_unavailable']);
  });

  it('forward-auth: VALID → 200, INVALID → 401 revoked', async () => {
    const fa = async (idx: number) => httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await auth(server.uri(LIST), idx))], { localAddress: '127.0.0.1' });
    expect((await fa(0)).status).toBe(200);
    const r = await fa(1);
    expect([r.status, JSON.parse(r.body).reason]).toEqual([401, 'revoked']);
  });

  it('audit lines name the status reason with the token identity', () => {
    const revoked = h.audit.filter((l) => l.reason === 'revoked');
    expect(revoked.map((l) => l.transport).sort()).toEqual(['ext_authz_grpc', 'ext_authz_http', 'forward_auth']);
    expect(revoked.every((l) => l.decision === 'deny' && l.status === 401 && typeof l.jti === 'string')).toBe(true);
    expect(h.audit.filter((l) => l.reason === 'suspended')).toHaveLength(2);
    // Refused after the signature verified, for want of a list or for the claim itself: the token is still named.
    const unavailable = h.audit.filter((l) => l.reason === 'status_list_unavailable');
    expect(unavailable.map((l) => [l.decision, l.iss, typeof l.jti, typeof l.sub])).toEqual([
      ['deny', ISSUER_A, 'string', 'string'],
      ['deny', ISSUER_A, 'string', 'string'],
    ]);
    expect(h.audit.filter((l) => l.reason === 'status_uri_not_allowed').map((l) => [l.iss, typeof l.jti])).toEqual([[ISSUER_A, 'string']]);
  });
});

describe('proxy (startJitgate): answers, metrics, /readyz, recovery', () => {
  let up: RecordingUpstream;
  let g: InProcessGate;
  const path = '/status/proxy';

  beforeAll(async () => {
    up = await startRecordingUpstream();
    g = await startGateInProcess(up.url, (c) => {
      c.issuers[0].status_list = { allowed_uris: [server.uri('/status/')], refresh: '1s', max_stale: '3s', timeout: '1s' };
    });
    server.lists.set(path, await cliList(g.keys.a, { uri: server.uri(path), bits: 1, size: 100_000, statuses: new Map([[99_999, 1]]) }));
  });
  afterAll(async () => {
    await g.close();
    await up.close();
    await rm(g.dir, { recursive: true, force: true });
  });

  it('VALID reaches the upstream; INVALID is refused 401 revoked and never forwarded', async () => {
    const ok = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${await g.token(statusClaim(server.uri(path), 0))}` } });
    expect(ok.status).toBe(200);
    const before = up.requests.length;
    const revoked = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${await g.token(statusClaim(server.uri(path), 99_999))}` } });
    expect(revoked.status).toBe(401);
    expect(JSON.parse(revoked.text)).toEqual({ error: 'invalid_token', reason: 'revoked' });
    expect(revoked.headers['cache-control']).toBe('no-store');
    expect(up.requests.length).toBe(before);
    await eventually(() => g.logs.some((l) => l.type === 'audit' && l.reason === 'revoked'), 3_000, 'the audit line');
  });

  it('metrics: lists held, fetches by result, list age', async () => {
    const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
    expect(m.get('jitgate_status_lists{issuer="https://broker.internal"}')).toBe(1);
    expect(m.get('jitgate_status_list_fetches_total{issuer="https://broker.internal",result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(m.get(`jitgate_status_list_age_seconds{uri="${server.uri(path)}"}`)).toBeLessThan(5);
    expect(m.get('jitgate_decisions_total{transport="proxy",result="deny",reason="revoked"}')).toBe(1);
  });

  it('no refresh for max_stale → 503 for its tokens, /readyz names the list and stays 200; recovery is automatic', async () => {
    const token = await g.token(statusClaim(server.uri(path), 0));
    expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    server.modes.set(path, { kind: 'status', status: 500 });
    try {
      await eventually(async () => (await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status === 503, 8_000, '503 once stale');
      const stale = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
      expect(JSON.parse(stale.text)).toEqual({ error: 'unavailable', reason: 'status_list_stale' });
      // Named on /readyz, but still ready: one stale list must not take the gate out of a load balancer.
      const ready = await send(g.adminUrl, '/readyz');
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.text).problems.join('\n')).toContain(`status list ${server.uri(path)} of issuer https://broker.internal has not been refreshed within max_stale`);
      const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
      expect(m.get('jitgate_status_list_fetches_total{issuer="https://broker.internal",result="status_list_unavailable"}')).toBeGreaterThanOrEqual(1);
      expect(m.get('jitgate_decisions_total{transport="proxy",result="unavailable",reason="status_list_stale"}')).toBeGreaterThanOrEqual(1);
    } finally {
      server.modes.delete(path);
    }
    await eventually(async () => (await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status === 200, 5_000, 'recovery');
    const after = await send(g.adminUrl, '/readyz');
    expect(after.status).toBe(200);
    expect(JSON.parse(after.text)).toEqual({ status: 'ready' });
  });
});

describe('workers: 2', () => {
  it('each worker fetches and enforces the list; allowed and revoked tokens are answered alike by both', async () => {
    const up = await startRecordingUpstream();
    const path = '/status/cluster';
    const cfg = await writeGateConfig(up.url, (c) => {
      c.workers = 2;
      c.issuers[0].status_list = { allowed_uris: [server.uri('/status/')] };
    });
    server.lists.set(path, await cliList(cfg.keys.a, { uri: server.uri(path), bits: 1, size: 16, statuses: new Map([[3, 1]]) }));
    const gate = await spawnGate(cfg.file);
    try {
      const valid = await tokenNow(cfg.keys, statusClaim(server.uri(path), 0));
      const revoked = await tokenNow(cfg.keys, statusClaim(server.uri(path), 3));
      for (let i = 0; i < 6; i++) {
        expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${valid}` } })).status).toBe(200);
        const r = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${revoked}` } });
        expect([r.status, JSON.parse(r.text).reason]).toEqual([401, 'revoked']);
      }
      // Round-robin over fresh connections: both workers served, each fetched the list once.
      expect(server.requestsFor(path)).toBe(2);
    } finally {
      gate.child.kill('SIGTERM');
      await gate.exited;
      await up.close();
      await rm(cfg.dir, { recursive: true, force: true });
    }
  });
});

describe('one URI named by two issuers', () => {
  it('its age series is the copy held, not dropped because the other issuer holds none (a review: the last issuer looked at won)', async () => {
    const up = await startRecordingUpstream();
    const path = '/status/shared';
    const sl = { allowed_uris: [server.uri('/status/')], refresh: '1s', max_stale: '30s', timeout: '1s' };
    const g = await startGateInProcess(up.url, (c) => {
      c.issuers[0].status_list = sl;
      c.issuers[1].status_list = sl; // B's copy of A's list never verifies: it is signed by A's key
    });
    try {
      server.lists.set(path, await cliList(g.keys.a, { uri: server.uri(path), bits: 1, size: 64, statuses: new Map() }));
      const now = Math.floor(Date.now() / 1000);
      const fromA = await g.token(statusClaim(server.uri(path), 0));
      const fromB = await sign(g.keys.b, { iss: ISSUER_B, iat: now, exp: now + 300, ...statusClaim(server.uri(path), 0) });
      expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${fromA}` } })).status).toBe(200);
      expect((await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${fromB}` } })).status).toBe(401);
      const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
      expect(m.get(`jitgate_status_lists{issuer="${ISSUER_A}"}`)).toBe(1);
      expect(m.get(`jitgate_status_lists{issuer="${ISSUER_B}"}`)).toBe(0);
      expect(m.get(`jitgate_status_list_age_seconds{uri="${server.uri(path)}"}`)).toBeLessThan(5);
    } finally {
      await g.close();
      await up.close();
      await rm(g.dir, { recursive: true, force: true });
    }
  });
});
