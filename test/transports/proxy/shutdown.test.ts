/**
 * Graceful SIGTERM on a real `jitgate serve` process: requests in flight when the signal arrives
 * complete with 200, new connections are refused from then on, and the process exits 0.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, spawnGate, startRecordingUpstream, tokenNow, untilDraining, writeGateConfig, type RecordingUpstream } from '../../fixtures/servers.ts';

let up: RecordingUpstream;

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  await up?.close();
});

/** Resolves with the connect error code, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('proxy shutdown', () => {
  it('case=a request still open when shutdown.grace ends is cut by the gate: audited as shutdown_cut (444), not as a client that left (499)', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.shutdown = { grace: '300ms' };
    });
    const gate = await spawnGate(cfg.file);
    const token = await tokenNow(cfg.keys);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    up.respond = (_req, res) => void released.then(() => res.writeHead(200).end('too late'));
    const before = up.requests.length;
    const cut = send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } }).then(
      (r) => `answered ${r.status}`,
      (e: NodeJS.ErrnoException) => e.code ?? e.message,
    );
    await up.waitFor(before + 1);
    gate.child.kill('SIGTERM');
    expect(await cut).not.toMatch(/^answered/);
    expect((await gate.exited).code).toBe(0);
    release();
    const line = gate.lines.find((l) => l.type === 'audit' && l.path === '/orders/42');
    expect(line).toMatchObject({ decision: 'allow', reason: 'shutdown_cut', status: 444 });
  }, 30_000);

  it('case=SIGTERM with slow requests in flight: they finish with 200, new connections are refused, exit 0', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.shutdown = { grace: '10s' };
    });
    const gate = await spawnGate(cfg.file);
    const port = Number(new URL(gate.url).port);
    const token = await tokenNow(cfg.keys);
    // The upstream answers only when released, after the signal.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    up.respond = (_req, res) => void released.then(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('slow but done'));

    const before = up.requests.length;
    // Keep-alive clients: the answers must close their connections (below).
    const inFlight = [0, 1, 2].map(() => send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}`, connection: 'keep-alive' } }));
    await up.waitFor(before + 3);

    gate.child.kill('SIGTERM');
    // Once draining, the listening socket is closed: new connections are refused.
    let refused = '';
    for (let i = 0; i < 100 && refused !== 'ECONNREFUSED'; i++) {
      refused = await tryConnect(port);
      if (refused !== 'ECONNREFUSED') await new Promise((r) => setTimeout(r, 20));
    }
    expect(refused).toBe('ECONNREFUSED');
    // The admin listener stays up during the drain and reports not ready.
    const ready = await send(gate.adminUrl, '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.text).problems).toContain('shutting down');

    release();
    const replies = await Promise.all(inFlight);
    expect(replies.map((r) => [r.status, r.text])).toEqual([
      [200, 'slow but done'],
      [200, 'slow but done'],
      [200, 'slow but done'],
    ]);
    // Answered with Connection: close. A keep-alive answer during the drain invited the client's next
    // request onto a connection the drain then closed as idle: a reset (a black-box probe: 5–8 of 10).
    expect(replies.map((r) => r.headers.connection)).toEqual(['close', 'close', 'close']);
    const exit = await gate.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(gate.lines.map((l) => l.msg)).toContain('stopped');
  }, 30_000);

  // A re-probe: a client sending its next request right after SIGTERM (Envoy's ext_authz client does, back to
  // back) had it reset by the drain's immediate close of idle connections: a 403 per rolling restart behind Envoy.
  it('case=an idle keep-alive connection that brings a request just after SIGTERM is answered, with Connection: close', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.shutdown = { grace: '5s' };
    });
    const gate = await spawnGate(cfg.file);
    const token = await tokenNow(cfg.keys);
    const s = connect(Number(new URL(gate.url).port), '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const closed = new Promise<string>((r) => {
      s.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
      s.on('close', () => r('closed'));
    });
    const request = `GET /orders/42 HTTP/1.1\r\nHost: orders.internal\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    s.write(request);
    for (let i = 0; i < 100 && !/\r\n\r\n/.test(got); i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(got.toLowerCase()).toContain('connection: keep-alive');
    got = '';
    gate.child.kill('SIGTERM');
    await untilDraining(gate.adminUrl);
    s.write(request); // on the idle connection, a moment into the drain
    expect(await closed).toBe('closed');
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
    expect(got.toLowerCase()).toContain('connection: close');
    expect((await gate.exited).code).toBe(0);
  }, 30_000);

  it('case=a second signal exits at once without waiting for in-flight requests', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.shutdown = { grace: '30s' };
    });
    const gate = await spawnGate(cfg.file);
    const token = await tokenNow(cfg.keys);
    up.respond = () => undefined; // never answers
    const before = up.requests.length;
    const pending = send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } }).catch((e: Error) => e);
    await up.waitFor(before + 1);
    gate.child.kill('SIGTERM');
    await untilDraining(gate.adminUrl);
    gate.child.kill('SIGTERM');
    const exit = await gate.exited;
    expect(exit.code).toBe(143);
    expect(await pending).toBeInstanceOf(Error);
  }, 30_000);
});
