/**
 * Issue 21 items 1, 6, 7 on every transport that receives a request head: the proxy, the ext_authz
 * HTTP service (and forward-auth on its listener) and the ext_authz gRPC service.
 * - Host/authority: missing, duplicated or not `host[:port]` → 400 missing_host / multiple_host / invalid_host.
 * - CONNECT → an answer (400 connect_method), never a silently closed connection.
 * - Dot-like segments (`..%20`, `..%E2%88%95`, …) → 400 path_dot_like_segment.
 * Each case carries a token whose grant covers the path, so before the fix it was allowed.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../fixtures/gate.ts';
import { send, sendRaw, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';
import { sign } from '../fixtures/tokens.ts';
import { GrpcClient, httpCall, startHarness, type Harness } from './ext-authz/helpers.ts';

let up: RecordingUpstream;
let gate: InProcessGate;
let keys: TestKeys;
let h: Harness;
let grpc: GrpcClient;

beforeAll(async () => {
  up = await startRecordingUpstream();
  gate = await startGateInProcess(up.url);
  keys = await makeTestKeys();
  h = await startHarness(keys);
  grpc = new GrpcClient(h.grpcPort);
});
afterAll(async () => {
  grpc?.close();
  await h?.close();
  await gate?.close();
  await up?.close();
});

const reasonOf = (body: string | Buffer): string => (JSON.parse(body.toString()) as { reason: string }).reason;

/** Host values that are not a single valid authority, and the reason each gets. */
const BAD_HOSTS: readonly (readonly [string, string])[] = [
  ['orders.internal/admin?', 'invalid_host'],
  ['x/admin#', 'invalid_host'],
  ['orders internal', 'invalid_host'],
  ['', 'invalid_host'],
  ['user@orders.internal', 'invalid_host'],
  ['orders.internal:', 'invalid_host'],
  ['0x7f.1', 'invalid_host'],
];

const DOT_LIKE = ['/orders/42/..%20', '/orders/42/.%20', '/orders/42/..%C2%A0', '/orders/42/..%E2%88%95', '/orders/42/..%C2%A5', '/orders/42/..%3F', '/orders/42/..%23'];

describe('proxy', () => {
  const rawGet = async (hostLines: readonly string[], path = '/orders/42', version = '1.1') =>
    sendRaw(gate.url, [`GET ${path} HTTP/${version}`, ...hostLines, `Authorization: Bearer ${await gate.token()}`, 'Connection: close']);

  it('a valid Host is forwarded (control)', async () => {
    const before = up.requests.length;
    const r = await rawGet(['Host: orders.internal:8080']);
    expect(r.status).toBe(200);
    expect(up.requests.length).toBe(before + 1);
  });

  it.each(BAD_HOSTS)('Host %j → 400 %s; the upstream never sees it', async (host, reason) => {
    const before = up.requests.length;
    const r = await rawGet([`Host: ${host}`]);
    expect([r.status, reasonOf(r.body)]).toEqual([400, reason]);
    expect(up.requests.length).toBe(before);
  });

  it('two Host lines → 400 multiple_host (the same value twice too)', async () => {
    for (const lines of [['Host: orders.internal', 'Host: evil.example'], ['Host: orders.internal', 'host: orders.internal']]) {
      const r = await rawGet(lines);
      expect([r.status, reasonOf(r.body)]).toEqual([400, 'multiple_host']);
    }
  });

  it('no Host → 400 missing_host, in HTTP/1.1 and in HTTP/1.0', async () => {
    const before = up.requests.length;
    for (const v of ['1.1', '1.0']) {
      const r = await rawGet([], '/orders/42', v);
      expect([r.status, reasonOf(r.body)]).toEqual([400, 'missing_host']);
    }
    expect(up.requests.length).toBe(before);
  });

  it('CONNECT → 400 connect_method, answered (not a closed connection)', async () => {
    const r = await sendRaw(gate.url, ['CONNECT orders.internal:443 HTTP/1.1', 'Host: orders.internal:443', `Authorization: Bearer ${await gate.token()}`]);
    expect([r.status, reasonOf(r.body)]).toEqual([400, 'connect_method']);
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('CONNECT with tunnel bytes already sent behind the head: still one 400, nothing relayed', async () => {
    const before = up.requests.length;
    const answer = await new Promise<string>((resolve, reject) => {
      const u = new URL(gate.url);
      let got = '';
      const s = connect(Number(u.port), u.hostname, () => s.write('CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\nGET /orders/42 HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      s.on('error', reject);
      s.on('close', () => resolve(got));
    });
    expect(answer.startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(answer.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(up.requests.length).toBe(before);
  });

  it.each(DOT_LIKE)('%s → 400 path_dot_like_segment; the upstream never sees it', async (path) => {
    const before = up.requests.length;
    const r = await send(gate.url, path, { headers: { authorization: `Bearer ${await gate.token()}` } });
    expect([r.status, reasonOf(r.body)]).toEqual([400, 'path_dot_like_segment']);
    expect(up.requests.length).toBe(before);
  });
});

describe('ext_authz HTTP (and forward-auth on its listener)', () => {
  const bearer = async () => ['authorization', `Bearer ${await sign(keys.a, { jti: 'edge' })}`];

  it('a valid Host is allowed (control)', async () => {
    expect((await httpCall(h.httpPort, 'GET', '/authz/orders/42', ['host', 'orders.internal', ...(await bearer())])).status).toBe(200);
  });

  it.each(BAD_HOSTS)('Host (Envoy :authority) %j → 400 %s', async (host, reason) => {
    const r = await httpCall(h.httpPort, 'GET', '/authz/orders/42', ['host', host, ...(await bearer())]);
    expect([r.status, reasonOf(r.body)]).toEqual([400, reason]);
  });

  it('two Host lines → 400 multiple_host; none → 400 missing_host', async () => {
    const token = `Authorization: Bearer ${await sign(keys.a, { jti: 'edge' })}`;
    const url = `http://127.0.0.1:${h.httpPort}`;
    const two = await sendRaw(url, ['GET /authz/orders/42 HTTP/1.1', 'Host: orders.internal', 'Host: evil.example', token, 'Connection: close']);
    expect([two.status, reasonOf(two.body)]).toEqual([400, 'multiple_host']);
    const none = await sendRaw(url, ['GET /authz/orders/42 HTTP/1.1', token, 'Connection: close']);
    expect([none.status, reasonOf(none.body)]).toEqual([400, 'missing_host']);
  });

  it('forward-auth: an invalid or repeated X-Forwarded-Host → 400', async () => {
    const fa = ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await bearer())];
    expect((await httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-host', 'orders.internal', ...fa])).status).toBe(200);
    const bad = await httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-host', 'orders.internal/admin?', ...fa]);
    expect([bad.status, reasonOf(bad.body)]).toEqual([400, 'invalid_host']);
    const two = await httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-host', 'orders.internal', 'x-forwarded-host', 'evil.example', ...fa]);
    expect([two.status, reasonOf(two.body)]).toEqual([400, 'multiple_host']);
  });

  it('CONNECT → an explicit 400 denial (connect_method), never a closed connection Envoy reads as an error', async () => {
    const r = await sendRaw(`http://127.0.0.1:${h.httpPort}`, ['CONNECT orders.internal:443 HTTP/1.1', 'Host: orders.internal:443']);
    expect([r.status, reasonOf(r.body)]).toEqual([400, 'connect_method']);
  });

  it.each(DOT_LIKE)('%s → 400 path_dot_like_segment (ext_authz and forward-auth)', async (path) => {
    const authz = await httpCall(h.httpPort, 'GET', `/authz${path}`, ['host', 'orders.internal', ...(await bearer())]);
    expect([authz.status, reasonOf(authz.body)]).toEqual([400, 'path_dot_like_segment']);
    const fa = await httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-method', 'GET', 'x-forwarded-uri', path, ...(await bearer())]);
    expect([fa.status, reasonOf(fa.body)]).toEqual([400, 'path_dot_like_segment']);
  });
});

describe('ext_authz gRPC', () => {
  const check = async (host: string | undefined, path = '/orders/42') => {
    const authorization = `Bearer ${await sign(keys.a, { jti: 'edge' })}`;
    const http: Record<string, unknown> = { method: 'GET', path, scheme: 'http', headers: { authorization } };
    if (host !== undefined) http.host = host;
    return grpc.check({ attributes: { request: { http } } });
  };

  it('a valid :authority is allowed (control)', async () => {
    expect((await check('orders.internal:443')).status?.code).toBe(0);
  });

  it.each(BAD_HOSTS)(':authority %j → denied 400 %s (status 3), never an RPC error', async (host, reason) => {
    const r = await check(host);
    expect(r.status?.code).toBe(3);
    expect(r.denied_response?.status?.code).toBe(400);
    expect(reasonOf(r.denied_response!.body)).toBe(reason === 'invalid_host' && host === '' ? 'missing_host' : reason);
  });

  it('no :authority → denied 400 missing_host', async () => {
    const r = await check(undefined);
    expect([r.status?.code, reasonOf(r.denied_response!.body)]).toEqual([3, 'missing_host']);
  });

  it.each(DOT_LIKE)('%s → denied 400 path_dot_like_segment', async (path) => {
    const r = await check('orders.internal', path);
    expect([r.status?.code, r.denied_response?.status?.code, reasonOf(r.denied_response!.body)]).toEqual([3, 400, 'path_dot_like_segment']);
  });
});
