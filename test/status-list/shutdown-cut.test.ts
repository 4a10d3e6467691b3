/**
 * A decision still waiting when a listener's shutdown grace ends (here on a status list whose
 * publisher never answers within the grace) is audited like every other cut request: 444
 * `shutdown_cut` (operations.md). Before, such requests left no audit line at all: their connections
 * were cut and the process was gone before the decision came (a lifecycle review). On the proxy,
 * ext_authz HTTP, forward-auth and ext_authz gRPC.
 */
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys } from '../fixtures/gate.ts';
import { startGateInProcess, startRecordingUpstream, type RecordingUpstream } from '../fixtures/servers.ts';
import { send } from '../fixtures/servers.ts';
import { checkRequest, GrpcClient, httpCall, startHarness } from '../transports/ext-authz/helpers.ts';
import { eventually, statusToken } from './helpers.ts';
import { StatusListServer } from './list-server.ts';

let server: StatusListServer;
let up: RecordingUpstream;

beforeAll(async () => {
  server = await new StatusListServer().start();
  server.all = { kind: 'slow', ms: 20_000 }; // every list: the fetch outlasts the grace
  up = await startRecordingUpstream();
});
afterAll(async () => {
  await up?.close();
  await server.stop();
});

const statusList = () => ({ allowed_uris: [server.uri('/hang/')], timeout: '10s' });

describe('a decision waiting on a status list when the grace ends', () => {
  it('ext_authz HTTP, forward-auth and gRPC: each such Check is audited as shutdown_cut 444', async () => {
    const keys = await makeTestKeys();
    const h = await startHarness(keys, (c) => (c.issuers[0].status_list = statusList()));
    const grpc = new GrpcClient(h.grpcPort);
    try {
      const auth = async (n: number): Promise<string[]> => ['authorization', `Bearer ${await statusToken(keys.a, server.uri(`/hang/${n}`), 0)}`];
      const calls = [
        httpCall(h.httpPort, 'GET', '/authz/orders/42', await auth(1)),
        httpCall(h.httpPort, 'GET', '/forward-auth', ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...(await auth(2))], { localAddress: '127.0.0.1' }),
        grpc.check(checkRequest('GET', '/orders/42', { authorization: (await auth(3))[1]! })),
      ].map((p) => p.then(() => 'answered', () => 'cut'));
      await eventually(() => [1, 2, 3].every((n) => server.requestsFor(`/hang/${n}`) === 1), 5_000, 'the three list fetches');
      await Promise.all(h.listeners.map((l) => l.close(200)));
      expect(await Promise.all(calls)).toEqual(['cut', 'cut', 'cut']);
      const cut = h.audit.filter((l) => l.reason === 'shutdown_cut');
      expect(cut.map((l) => l.transport).sort()).toEqual(['ext_authz_grpc', 'ext_authz_http', 'forward_auth']);
      for (const l of cut) expect(l).toMatchObject({ decision: 'deny', status: 444, method: 'GET' });
    } finally {
      grpc.close();
      h.gate.stop();
      await rm(h.dir, { recursive: true, force: true });
    }
  });

  it('the proxy: the request is audited as shutdown_cut 444 and never reaches the backend', async () => {
    const gate = await startGateInProcess(up.url, (c) => (c.issuers[0].status_list = statusList()));
    try {
      const now = Math.floor(Date.now() / 1000);
      const token = await statusToken(gate.keys.a, server.uri('/hang/4'), 0, { iat: now, exp: now + 300 });
      const call = send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } }).then(
        () => 'answered',
        () => 'cut',
      );
      await eventually(() => server.requestsFor('/hang/4') === 1, 5_000, 'the list fetch');
      await gate.running.close(200);
      expect(await call).toBe('cut');
      expect(gate.logs.filter((l) => l.type === 'audit' && l.reason === 'shutdown_cut')).toEqual([expect.objectContaining({ transport: 'proxy', decision: 'deny', status: 444, method: 'GET' })]);
      expect(up.requests).toHaveLength(0);
    } finally {
      await gate.close();
    }
  });

  it('the proxy: a client that left while its decision waited is audited once, as client_closed 499, when the listener closes early', async () => {
    const gate = await startGateInProcess(up.url, (c) => (c.issuers[0].status_list = statusList()));
    try {
      const now = Math.floor(Date.now() / 1000);
      const token = await statusToken(gate.keys.a, server.uri('/hang/5'), 0, { iat: now, exp: now + 300 });
      const u = new URL(gate.url);
      const s = connect(Number(u.port), u.hostname);
      s.on('error', () => {});
      await new Promise<void>((r) => s.once('connect', r));
      s.write(`GET /orders/42 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\n\r\n`);
      await eventually(() => server.requestsFor('/hang/5') === 1, 5_000, 'the list fetch');
      s.destroy(); // the client gives up
      const started = performance.now();
      await gate.running.close(5_000);
      // No connection left: the listener closed without waiting out the grace.
      expect(performance.now() - started).toBeLessThan(4_000);
      expect(gate.logs.filter((l) => l.type === 'audit' && (l.reason === 'client_closed' || l.reason === 'shutdown_cut'))).toEqual([expect.objectContaining({ transport: 'proxy', decision: 'deny', status: 499, reason: 'client_closed' })]);
    } finally {
      await gate.close();
    }
  });
});

