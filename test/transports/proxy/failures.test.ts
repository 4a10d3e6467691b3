/**
 * When the upstream or the client fails (SPEC §3): connect failure → 502, no answer in time → 504,
 * failures after the response head → the client connection is cut, and a client that leaves
 * mid-request aborts the upstream request.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerOk, closeAll, parseMetrics, send, startGateInProcess, startGateWithUpstream, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';
import { assertRefusedPort, REFUSED_PORT } from '../../fixtures/ports.ts';

let up: RecordingUpstream;
let gate: InProcessGate;
const auth = async (): Promise<Record<string, string>> => ({ authorization: `Bearer ${await gate.token()}` });

beforeAll(async () => {
  ({ up, gate } = await startGateWithUpstream((c, url) => {
    c.upstream = { url, connect_timeout: '500ms', headers_timeout: '300ms', body_timeout: '300ms' };
  }));
});
afterAll(() => closeAll(gate, up));

async function metric(name: string): Promise<number> {
  const res = await send(gate.adminUrl, '/metrics');
  return parseMetrics(res.text).get(name) ?? 0;
}

const lastAudit = () => gate.logs.filter((l) => l.type === 'audit').at(-1)!;

describe('proxy failures', () => {
  it('case=upstream hangs before its head → 504 upstream_timeout', async () => {
    up.respond = () => undefined; // never answers
    try {
      const res = await send(gate.url, '/orders/42', { headers: await auth() });
      expect(res.status).toBe(504);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.text).toBe('{"error":"gateway_timeout","reason":"upstream_timeout"}');
      expect(lastAudit()).toMatchObject({ decision: 'allow', reason: 'upstream_timeout', status: 504 });
      expect(await metric('jitgate_upstream_errors_total{kind="timeout"}')).toBeGreaterThanOrEqual(1);
      expect(await metric('jitgate_decisions_total{transport="proxy",result="deny",reason="upstream_timeout"}')).toBeGreaterThanOrEqual(1);
    } finally {
      up.respond = answerOk;
    }
  });

  it('case=upstream stalls mid-body → the client connection is cut, not a second status', async () => {
    up.respond = (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('x'.repeat(10)); // then nothing
    };
    try {
      const err = await send(gate.url, '/orders/42', { headers: await auth() }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(lastAudit()).toMatchObject({ reason: 'upstream_timeout', status: 200 });
    } finally {
      up.respond = answerOk;
    }
  });

  it('case=upstream resets the connection before answering → 502 upstream_unreachable', async () => {
    up.respond = (req) => req.socket.destroy();
    try {
      const res = await send(gate.url, '/orders/42', { headers: await auth() });
      expect(res.status).toBe(502);
      expect(res.text).toBe('{"error":"bad_gateway","reason":"upstream_unreachable"}');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(lastAudit()).toMatchObject({ reason: 'upstream_unreachable', status: 502 });
    } finally {
      up.respond = answerOk;
    }
  });

  it('case=client aborts mid-body → the upstream request is aborted too', async () => {
    const before = up.requests.length;
    const headers = await auth();
    const socket = connect(Number(new URL(gate.url).port), '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.on('error', () => undefined);
    socket.write(`PATCH /orders/42 HTTP/1.1\r\nHost: x\r\nAuthorization: ${headers.authorization}\r\nContent-Length: 10000000\r\n\r\n`);
    socket.write(Buffer.alloc(1_000_000, 1));
    await up.waitFor(before + 1);
    const rec = up.requests[before]!;
    while (rec.bodyBytes === 0) await new Promise((r) => setTimeout(r, 10));
    socket.destroy();
    await rec.done;
    expect(rec.aborted).toBe(true);
    expect(rec.bodyBytes).toBeLessThan(10_000_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(lastAudit()).toMatchObject({ decision: 'allow', method: 'PATCH', status: 499 });
  });

  it('case=client leaves while the upstream is still thinking → the upstream sees the close', async () => {
    let seen!: (v: boolean) => void;
    const closed = new Promise<boolean>((r) => (seen = r));
    up.respond = (_req, res) => res.on('close', () => seen(true));
    try {
      const headers = await auth();
      const socket = connect(Number(new URL(gate.url).port), '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise<void>((r) => socket.once('connect', () => r()));
      const before = up.requests.length;
      socket.write(`GET /orders/42 HTTP/1.1\r\nHost: x\r\nAuthorization: ${headers.authorization}\r\n\r\n`);
      await up.waitFor(before + 1);
      socket.destroy();
      expect(await closed).toBe(true);
    } finally {
      up.respond = answerOk;
    }
  });
});

describe('proxy failures, upstream down', () => {
  it('case=nothing listens on the upstream port → 502 upstream_unreachable', async () => {
    // Not a just-closed server's port, which another test's server may take under load (fixtures/ports.ts).
    await assertRefusedPort();
    const g = await startGateInProcess(`http://127.0.0.1:${REFUSED_PORT}`);
    try {
      const res = await send(g.url, '/orders/42', { headers: { authorization: `Bearer ${await g.token()}` } });
      expect(res.status).toBe(502);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.text).toBe('{"error":"bad_gateway","reason":"upstream_unreachable"}');
      const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
      expect(m.get('jitgate_upstream_errors_total{kind="connect"}')).toBe(1);
    } finally {
      await g.close();
    }
  });
});
