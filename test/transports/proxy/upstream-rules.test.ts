/**
 * What a backend may not stretch (a review of the upstream side, 2026-12-07): a request it got is not
 * sent to it again because it closed a fresh connection; 1xx answers do not extend
 * `upstream.headers_timeout`; its `Keep-Alive: timeout=N` hint does not keep a pooled connection
 * longer than `upstream.keep_alive_timeout`; an answer before the upload ended does not wedge the
 * client's connection. A raw TCP backend, one gate in process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRawBackend, type RawBackend } from '../../fixtures/raw-backend.ts';
import { rawClient } from '../../fixtures/raw-client.ts';
import { send, startGateInProcess, type InProcessGate } from '../../fixtures/servers.ts';

let backend: RawBackend;
let gate: InProcessGate;
let token: string;
/** Requests the backend read, by path, and the connection (its number) each came on. */
const seen: { path: string; conn: number }[] = [];

beforeAll(async () => {
  backend = await startRawBackend(({ target: path, conn, socket, every }) => {
    seen.push({ path, conn });
    if (path === '/orders/answer-early') {
      // Refuses an upload without reading it, and closes (the rest of the body is never read here).
      socket.end('HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig');
      return 'stop';
    }
    if (path === '/orders/close-after-reading') socket.end(); // a FIN, no answer: the backend had the request
    else if (path === '/orders/hints-forever') {
      // An Early Hints answer every 200 ms, and never a final one.
      const send103 = () => socket.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n');
      send103();
      every(200, send103);
    } else socket.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=600\r\nContent-Length: 2\r\n\r\nok');
  });
  gate = await startGateInProcess(backend.url, (c) => {
    c.upstream.headers_timeout = '1s';
    c.upstream.keep_alive_timeout = '300ms';
    c.limits = { body_timeout: '1s' };
  });
  token = await gate.token({ authorization_details: [{ type: 'jit_grant', actions: ['GET', 'DELETE', 'POST'], paths: ['/orders/**'] }] });
});
afterAll(async () => {
  await gate?.close();
  await backend?.close();
});

const statuses = (text: string) => text.match(/HTTP\/1\.1 \d{3}/g);

const call = (path: string, method = 'GET') => send(gate.url, path, { method, headers: { authorization: `Bearer ${token}` } });
const auditFor = (path: string) => gate.logs.filter((l) => l.type === 'audit' && l.path === path);

describe('the backend cannot stretch the gate', () => {
  it('a fresh connection closed after the request was read: 502, and the request is not sent again', async () => {
    // First request of the run: the pool holds no connection yet, so this one is fresh.
    expect(seen.length).toBe(0);
    const r = await call('/orders/close-after-reading', 'DELETE');
    expect(r.status).toBe(502);
    expect(seen.filter((s) => s.path === '/orders/close-after-reading').length).toBe(1);
    expect(auditFor('/orders/close-after-reading').at(-1)).toMatchObject({ reason: 'upstream_unreachable', status: 502 });
  });

  it('1xx answers every 200 ms do not hold the exchange past headers_timeout: 504', async () => {
    const started = performance.now();
    const r = await call('/orders/hints-forever');
    const ms = performance.now() - started;
    expect(r.status).toBe(504);
    expect(JSON.parse(r.text)).toMatchObject({ reason: 'upstream_timeout' });
    // Due at the first 1xx after 1 s; undici's own timer, restarted by each 1xx, would never fire.
    expect(ms).toBeGreaterThanOrEqual(950);
    expect(ms).toBeLessThan(3000);
  });

  it('a backend hinting Keep-Alive: timeout=600 still has its idle connection closed after keep_alive_timeout', async () => {
    expect((await call('/orders/one')).status).toBe(200);
    const first = seen.at(-1)!.conn;
    expect((await call('/orders/two')).status).toBe(200);
    expect(seen.at(-1)!.conn).toBe(first); // reused while fresh
    await new Promise((r) => setTimeout(r, 700));
    expect((await call('/orders/three')).status).toBe(200);
    expect(seen.at(-1)!.conn).not.toBe(first);
  });

  it('an answer before the upload ended: the rest of the body is dropped and a pipelined request is answered on the same connection', async () => {
    const c = await rawClient(gate.url);
    const piece = Buffer.alloc(100_000, 0x78);
    c.socket.write(`POST /orders/answer-early HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${10 * piece.length}\r\n\r\n`);
    for (let i = 0; i < 10; i++) {
      c.socket.write(piece);
      await new Promise((r) => setTimeout(r, 20));
    }
    c.socket.write(`GET /orders/after HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
    // Before the change the second request was never answered, and the connection was reset at the
    // keep-alive timeout (5 s here); now both answers come at once and the gate closes it cleanly.
    expect((await c.closed).hadError).toBe(false);
    expect(statuses(c.read())).toEqual(['HTTP/1.1 413', 'HTTP/1.1 200']);
    expect(c.read().split('HTTP/1.1 ')[1]).toMatch(/\r\n\r\nbig$/);
    expect(seen.filter((s) => s.path === '/orders/after').length).toBe(1);
    expect(auditFor('/orders/answer-early').at(-1)).toMatchObject({ decision: 'allow', status: 413 });
  });

  it('a body that stops coming after its early answer: the connection is closed after limits.body_timeout', async () => {
    const c = await rawClient(gate.url);
    c.socket.write(`POST /orders/answer-early HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nContent-Length: 1000000\r\n\r\n`);
    c.socket.write(Buffer.alloc(1000, 0x78));
    const sent = performance.now();
    const ms = (await c.closed).at - sent;
    expect(c.read()).toMatch(/^HTTP\/1\.1 413 /);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(4000);
  });

  it('a 502 to a whole request keeps the client connection: the request pipelined behind it is answered', async () => {
    const c = await rawClient(gate.url);
    const head = (path: string, last: boolean) => `GET ${path} HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
    c.socket.write(head('/orders/close-after-reading', false) + head('/orders/behind-a-502', true));
    expect((await c.closed).hadError).toBe(false);
    expect(statuses(c.read())).toEqual(['HTTP/1.1 502', 'HTTP/1.1 200']);
  });

  it.each([
    ['bad chunk framing in the dropped body', 'zz\r\n', false],
    ['the client closing mid-body', '', true],
  ])('an early answer, then %s: the connection ends quietly (no second answer) and the gate keeps serving', async (_what, bytes, fin) => {
    const c = await rawClient(gate.url);
    c.socket.write(`POST /orders/answer-early HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
    await c.until('big');
    if (fin) c.socket.end();
    else c.socket.write(bytes);
    await c.closed;
    expect(statuses(c.read())).toEqual(['HTTP/1.1 413']);
    expect((await call('/orders/still-serving')).status).toBe(200);
  });

  it('an early answer whose dropped body then ends: a bad request after it gets its own 400', async () => {
    const c = await rawClient(gate.url);
    c.socket.write(`POST /orders/answer-early HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer ${token}\r\nContent-Length: 10\r\n\r\nhello`);
    await c.until('big');
    c.socket.write('world' + 'zz garbage\r\n\r\n');
    await c.closed;
    expect(statuses(c.read())).toEqual(['HTTP/1.1 413', 'HTTP/1.1 400']);
  });
});
