/**
 * Framing attacks and slow clients (issue 7) against the real gate's proxy: smuggling rows must
 * get exactly the listed answers and the upstream must see nothing but the granted request with
 * the body the client framed; slowloris on the head and on the body must be cut within the
 * configured limits (headers_timeout 1s, request_timeout 2s, keep_alive_timeout 1s in the harness)
 * while normal requests keep flowing.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMUGGLING } from './corpus/smuggling.ts';
import { parseAnswer, rawExchange, startAttackGate, type AttackGate } from './harness.ts';
import { signed } from './jws.ts';

let g: AttackGate;
beforeAll(async () => {
  g = await startAttackGate();
});
afterAll(async () => {
  await g?.close();
});

const statusesOf = (text: string): number[] => [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));

describe('request smuggling', () => {
  it.each(SMUGGLING.map((r) => [r.name, r] as const))('%s', async (_n, row) => {
    const before = g.upstream.requests.length;
    const bytes = Buffer.from(row.bytes({ keys: g.keys, attackerUrl: g.attackerUrl }), 'latin1');
    const a = await rawExchange(g.ports.proxy, bytes, 10_000);
    const all = `${a.status === 0 ? '' : `HTTP/1.1 ${a.status} \r\n`}${a.body}`;
    expect(statusesOf(all), 'answers in order').toEqual(row.statuses);
    if (row.upstream > 0) await g.upstream.waitFor(before + row.upstream);
    await new Promise((r) => setTimeout(r, 20));
    const seen = g.upstream.requests.slice(before);
    if (row.bodyError === true) expect(seen.length, 'requests the upstream saw').toBeLessThanOrEqual(1);
    else expect(seen.length, 'requests the upstream saw').toBe(row.upstream);
    for (const r of seen) {
      await r.done;
      expect(r.url).toBe('/orders/42');
      if (row.bodyError === true) expect(r.aborted, 'a broken body is never delivered whole').toBe(true);
      if (row.bodyBytes !== undefined) expect(r.bodyBytes).toBe(row.bodyBytes);
    }
  });

  it('the proxy is still healthy after every smuggling row', async () => {
    const a = await rawExchange(g.ports.proxy, `GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(a.status).toBe(200);
  });
});

/** Opens a connection, writes `first`, then one character of `drip` every `everyMs` until the server closes it. */
function trickle(port: number, first: string, drip: string, everyMs: number): Promise<{ ms: number; answer: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    let got = '';
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    const s: Socket = connect(port, '127.0.0.1', () => {
      s.write(first);
      if (drip === '') return;
      timer = setInterval(() => {
        if (!s.destroyed && s.writable) s.write(drip[i++ % drip.length]!);
      }, everyMs);
    });
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(timer);
      resolve({ ms: performance.now() - started, answer: got });
    });
    // Hard stop so a gate that never closes fails the assertion instead of hanging the file.
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

describe('slow clients', () => {
  it('slowloris on the head: closed within headers_timeout (1s) plus one check interval', async () => {
    const r = await trickle(g.ports.proxy, 'GET /orders/42 HTTP/1.1\r\nHost: orders.internal\r\n', 'X-Slow: aaaaaaaaaaaaaaaa\r\n', 100);
    expect(r.ms).toBeLessThan(2500);
    expect(r.answer === '' || parseAnswer(Buffer.from(r.answer, 'latin1')).status === 408).toBe(true);
  });

  it('slowloris on the head of the ext_authz HTTP service: closed as fast', async () => {
    const r = await trickle(g.ports.http, 'GET /authz/orders/42 HTTP/1.1\r\nHost: orders.internal\r\n', 'X-Slow: a\r\n', 100);
    expect(r.ms).toBeLessThan(2500);
  });

  it('slow body of a refused request: answered and closed at once, the body never read', async () => {
    const r = await trickle(g.ports.proxy, 'PATCH /orders/42 HTTP/1.1\r\nHost: orders.internal\r\nContent-Length: 100000\r\n\r\n', 'x', 100);
    expect(parseAnswer(Buffer.from(r.answer, 'latin1')).status).toBe(401);
    expect(r.ms).toBeLessThan(1500);
  });

  it('slow body of an allowed request: cut within request_timeout (2s); the upstream sees an aborted body', async () => {
    const before = g.upstream.requests.length;
    const tok = signed(g.keys.a);
    const r = await trickle(g.ports.proxy, `PATCH /orders/42 HTTP/1.1\r\nHost: orders.internal\r\nAuthorization: Bearer ${tok}\r\nContent-Length: 100000\r\n\r\n`, 'x', 100);
    expect(r.ms).toBeLessThan(4000);
    await g.upstream.waitFor(before + 1);
    const rec = g.upstream.requests[before]!;
    await rec.done;
    expect(rec.aborted || rec.bodyBytes < 100000).toBe(true);
  });

  it('an idle keep-alive connection is closed after keep_alive_timeout (1s)', async () => {
    const r = await trickle(g.ports.proxy, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', '', 1_000_000);
    expect(statusesOf(r.answer)).toEqual([200]);
    expect(r.ms).toBeLessThan(2500);
  });

  it('50 slowloris connections do not stop an honest request', async () => {
    const slow = Array.from({ length: 50 }, () => trickle(g.ports.proxy, 'GET /orders/42 HTTP/1.1\r\n', 'X: y\r\n', 200));
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const a = await rawExchange(g.ports.proxy, `GET /orders/42 HTTP/1.1\r\nHost: o\r\nAuthorization: Bearer ${signed(g.keys.a)}\r\nConnection: close\r\n\r\n`);
    expect(a.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(1000);
    const done = await Promise.all(slow);
    for (const d of done) expect(d.ms).toBeLessThan(3000);
  });
});
