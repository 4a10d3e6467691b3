/**
 * SPEC §12 anomaly counting beyond the proxy, on a real in-process gate with real listeners: the
 * ext_authz HTTP service counts refusals like the proxy (the count lives in the gate all transports
 * share), and a DPoP-bound token's 400s do not count — at 400 nobody has shown they hold its key,
 * so a thief holding only the token must not be able to get its task revoked.
 */
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMetrics, send, startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../fixtures/servers.ts';
import { httpCall } from '../transports/ext-authz/helpers.ts';

let up: RecordingUpstream | undefined;
let gate: InProcessGate | undefined;

afterEach(async () => {
  await gate?.close();
  await up?.close();
  if (gate !== undefined) await rm(gate.dir, { recursive: true, force: true });
  gate = undefined;
  up = undefined;
});

async function start(): Promise<InProcessGate> {
  up = await startRecordingUpstream();
  gate = await startGateInProcess(up.url, (c) => {
    c.revocation.journal = './revocations.journal';
    c.anomaly = { deny_threshold: 3, window: '1m', revoke: 'txn' };
    c.ext_authz = { http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: '/authz' }, forward_auth: { path: '/forward-auth', trusted_proxies: ['127.0.0.1/32'] } };
  });
  return gate;
}

const metric = async (g: InProcessGate, name: string): Promise<number | undefined> => parseMetrics((await send(g.adminUrl, '/metrics')).text).get(name);

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The 400 refusal count once it reaches `n` (or what it is after 5 s): counting follows the answer. */
async function count400Reaches(g: Parameters<typeof metric>[0], n: number): Promise<number | undefined> {
  let counted: number | undefined;
  for (const end = Date.now() + 5000; Date.now() < end && counted !== n; await new Promise((w) => setTimeout(w, 20))) {
    counted = await metric(g, 'jitgate_anomaly_refusals_total{status="400"}');
  }
  return counted;
}

describe('anomaly counting on other transports', () => {
  it('case=ext_authz HTTP: 403s of a token cross the threshold and its task is refused on the proxy too', async () => {
    const g = await start();
    const authz = `http://127.0.0.1:${g.running.listeners.extAuthz[0]!.port}`;
    const t = await g.token({ jti: 'ea-1', txn: 'task-ea' });
    for (const p of ['/authz/orders/1', '/authz/orders/2', '/authz/admin']) {
      expect((await send(authz, p, { headers: { authorization: `Bearer ${t}` } })).status).toBe(403);
    }
    await until(() => g.logs.some((l) => l.decision === 'anomaly_revoked'));
    const r = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${await g.token({ jti: 'ea-2', txn: 'task-ea' })}` } });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.text).reason).toBe('revoked');
    const line = g.logs.find((l) => l.decision === 'anomaly_revoked')!;
    expect(line).toMatchObject({ type: 'audit', jti: 'ea-1', revoke: 'txn', revoked: { txn: 'task-ea' }, client: '127.0.0.1' });
    // The refusals' own audit lines name the transport and the client address.
    const refusals = g.logs.filter((l) => l.type === 'audit' && l.decision === 'deny' && l.reason === 'path_not_granted');
    expect(refusals.map((l) => [l.transport, l.client])).toEqual(Array(3).fill(['ext_authz_http', '127.0.0.1']));
  });

  // docs/anomaly-and-audit.md: forward-auth's override refusals are judged by the gate (input.refusal),
  // so they count like any 400; refusals forward-auth makes before asking the gate do not.
  it('case=forward-auth: X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override and CONNECT 400s count; untrusted forwarders do not', async () => {
    const g = await start();
    const port = g.running.listeners.extAuthz[0]!.port;
    const fa = (headers: string[], localAddress = '127.0.0.1') => httpCall(port, 'GET', '/forward-auth', ['x-forwarded-method', 'GET', 'x-forwarded-uri', '/orders/42', ...headers], { localAddress });
    const other = `Bearer ${await g.token({ jti: 'fa-untrusted', txn: 'task-untrusted' })}`;
    for (let i = 0; i < 4; i++) expect((await fa(['authorization', other], '127.0.0.2')).status).toBe(400);
    expect(await metric(g, 'jitgate_anomaly_refusals_total{status="400"}')).toBeUndefined();

    const t = `Bearer ${await g.token({ jti: 'fa-1', txn: 'task-fa' })}`;
    const one = async (extra: string[], reason: string) => {
      const r = await fa(['authorization', t, ...extra]);
      expect([r.status, JSON.parse(r.body).reason]).toEqual([400, reason]);
    };
    await one(['x-original-url', '/admin'], 'url_override');
    await one(['x-rewrite-url', '/admin'], 'url_override');
    await until(() => g.logs.filter((l) => l.type === 'audit' && l.reason === 'url_override').length === 2);
    // Counted after the answer, once the token is identified (through the gate's verify mode): poll.
    expect(await count400Reaches(g, 2)).toBe(2);
    expect(g.logs.some((l) => l.decision === 'anomaly_revoked')).toBe(false);
    await one(['x-http-method-override', 'DELETE'], 'method_override');
    await until(() => g.logs.some((l) => l.decision === 'anomaly_revoked'));
    expect(g.logs.find((l) => l.decision === 'anomaly_revoked')).toMatchObject({ jti: 'fa-1', reason: 'method_override', revoked: { txn: 'task-fa' } });

    // CONNECT given as data is a 400 like the others (SPEC §2), so it counts too.
    const c = `Bearer ${await g.token({ jti: 'fa-connect', txn: 'task-connect' })}`;
    const r = await httpCall(port, 'GET', '/forward-auth', ['x-forwarded-method', 'CONNECT', 'x-forwarded-uri', '/orders/42', 'authorization', c]);
    expect([r.status, JSON.parse(r.body).reason]).toEqual([400, 'connect_method']);
    // Counted after the answer (the token is identified by a signature check): poll the metric.
    expect(await count400Reaches(g, 4)).toBe(4);
  });

  it('case=attack: 400s carrying a DPoP-bound token are not counted (possession not shown)', async () => {
    const g = await start();
    const bound = await g.token({ jti: 'bound-1', txn: 'task-bound', cnf: { jkt: 'A'.repeat(43) } });
    for (let i = 0; i < 6; i++) {
      for (const scheme of ['Bearer', 'DPoP']) {
        expect((await send(g.url, '/orders/42/%2e%2e/admin', { headers: { authorization: `${scheme} ${bound}` } })).status).toBe(400);
      }
    }
    // A plain token's 400s on the same gate are counted, so the metric is alive.
    const plain = await g.token({ jti: 'plain-1', txn: 'task-plain' });
    expect((await send(g.url, '/orders//42', { headers: { authorization: `Bearer ${plain}` } })).status).toBe(400);
    await until(() => g.logs.some((l) => l.type === 'audit' && l.reason === 'path_empty_segment'));
    expect(await count400Reaches(g, 1)).toBe(1);
    expect(g.logs.some((l) => l.decision === 'anomaly_revoked')).toBe(false);
  });
});
