/**
 * Legacy backends speak old or sloppy HTTP. A raw TCP backend answers each path with exact bytes, and
 * the gate must relay what is valid, turn what is not into 502 before the head (SPEC §3), cut the
 * client after it, and keep serving. HTTP/1.0 bodies delimited by close, chunked bodies with
 * trailers, `Connection: close` on every answer, interim 1xx answers, repeated Set-Cookie,
 * truncated bodies, conflicting Content-Length, garbage and resets.
 */
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRawBackend, type RawBackend } from '../../fixtures/raw-backend.ts';
import { parseMetrics, send, startGateInProcess, type InProcessGate } from '../../fixtures/servers.ts';

/** Path → what the backend writes (then it closes when `close` is set). */
const SCRIPTS: Record<string, { bytes: string; close: boolean }> = {
  '/orders/http10': { bytes: 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from 1996', close: true },
  '/orders/chunked-trailer': {
    bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\nX-Checksum: abc\r\n\r\n',
    close: false,
  },
  '/orders/close-each': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok', close: true },
  '/orders/early-hints': { bytes: 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter', close: false },
  '/orders/unasked-continue': { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter', close: false },
  '/orders/cookies': { bytes: 'HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\nContent-Length: 0\r\n\r\n', close: false },
  '/orders/no-content': { bytes: 'HTTP/1.1 204 No Content\r\nX-Legacy: yes\r\n\r\n', close: false },
  // RFC 9110 §8.6: a 304 may carry the Content-Length of the body it stands for (node:http, ASP.NET do).
  '/orders/not-modified-length': { bytes: 'HTTP/1.1 304 Not Modified\r\nETag: "v7"\r\nContent-Length: 1234\r\n\r\n', close: false },
  '/orders/no-content-length': { bytes: 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', close: false },
  '/orders/truncated': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b', close: true },
  '/orders/two-lengths': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\nokokoko', close: true },
  '/orders/garbage': { bytes: 'THIS IS NOT HTTP\r\n\r\n', close: true },
  '/orders/reset': { bytes: '', close: true },
};

let backend: RawBackend;
let gate: InProcessGate;
let token: string;
/** Requests the backend read, by path. */
const seen = new Map<string, number>();

beforeAll(async () => {
  backend = await startRawBackend(({ target, socket }) => {
    const path = target.split('?')[0]!;
    const n = (seen.get(path) ?? 0) + 1;
    seen.set(path, n);
    // The idle-close race, made deterministic: every odd-numbered request dies with a reset.
    const script = path === '/orders/reset-odd' ? (n % 2 === 1 ? SCRIPTS['/orders/reset'] : SCRIPTS['/orders/close-each']) : SCRIPTS[path];
    if (script === undefined || script.bytes === '') {
      socket.resetAndDestroy();
      return 'stop';
    }
    socket.write(script.bytes);
    if (!script.close) return undefined;
    socket.end();
    return 'stop';
  });
  gate = await startGateInProcess(backend.url, (c) => {
    c.upstream.headers_timeout = '2s';
  });
  token = await gate.token({ authorization_details: [{ type: 'jit_grant', actions: ['GET', 'HEAD', 'DELETE', 'POST', 'PUT'], paths: ['/orders/**'] }] });
});
afterAll(async () => {
  await gate?.close();
  await backend?.close();
});

const get = (path: string) => send(gate.url, path, { headers: { authorization: `Bearer ${token}` } });
const metric = async (name: string) => parseMetrics((await send(gate.adminUrl, '/metrics')).text).get(name) ?? 0;

/** Reads a response that may be cut short: the status, the bytes that arrived, and whether it completed. */
function getPartial(path: string): Promise<{ status: number; body: string; complete: boolean }> {
  const u = new URL(gate.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('close', () => resolve({ status: res.statusCode!, body, complete: res.complete }));
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end();
  });
}

const auditFor = (path: string) => gate.logs.filter((l) => l.type === 'audit' && l.path === path);

describe('old but valid HTTP is relayed', () => {
  it('an HTTP/1.0 answer whose body ends at close', async () => {
    const r = await get('/orders/http10');
    expect(r.status).toBe(200);
    expect(r.text).toBe('hello from 1996');
    expect(r.headers['content-type']).toBe('text/plain');
  });

  it('a chunked body with a trailer: the body arrives whole', async () => {
    const r = await get('/orders/chunked-trailer');
    expect(r.status).toBe(200);
    expect(r.text).toBe('hello, world');
  });

  it('Connection: close on every answer: each request gets a fresh upstream connection', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await get('/orders/close-each');
      expect([r.status, r.text]).toEqual([200, 'ok']);
    }
  });

  it('an interim 103 Early Hints is not relayed; the final answer is', async () => {
    const r = await get('/orders/early-hints');
    expect([r.status, r.text]).toEqual([200, 'after']);
    expect(r.headers.link).toBeUndefined();
  });

  it('repeated Set-Cookie headers all reach the client', async () => {
    const r = await get('/orders/cookies');
    expect(r.status).toBe(200);
    expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
  });

  it.each([
    ['/orders/not-modified-length', 304, 'v7'],
    ['/orders/no-content-length', 204, undefined],
  ])('%s: a bodiless %i that names a Content-Length is relayed whole, and the connection goes on', async (path, status, etag) => {
    const u = new URL(gate.url);
    // Two requests on one client connection: the first answer must be complete for the second to come.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await new Promise<{ status: number; etag: unknown; complete: boolean }>((resolve, reject) => {
          const req = request({ host: u.hostname, port: u.port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, etag: res.headers.etag, complete: res.complete }));
          });
          req.on('error', reject);
          req.end();
        });
        expect(r).toEqual({ status, etag: etag === undefined ? undefined : `"${etag}"`, complete: true });
      }
    } finally {
      agent.destroy();
    }
    expect(auditFor(path).at(-1)).toMatchObject({ decision: 'allow', reason: 'granted', status });
  });

  it('204 with no body', async () => {
    const r = await get('/orders/no-content');
    expect(r.status).toBe(204);
    expect(r.body.length).toBe(0);
    expect(r.headers['x-legacy']).toBe('yes');
  });
});

describe('broken answers fail closed and the gate keeps serving', () => {
  it.each([
    ['/orders/garbage', 'a status line that is not HTTP'],
    ['/orders/reset', 'a connection reset before any answer'],
    ['/orders/two-lengths', 'two different Content-Length values (a response-splitting shape)'],
    // jitgate never forwards Expect (node:http answers the client's after the decision), so a 100
    // from the backend answers nothing it was asked; undici refuses it as a bad response.
    ['/orders/unasked-continue', 'a 100 Continue to a request that sent no Expect'],
  ])('%s (%s) → 502 upstream_unreachable, no backend bytes', async (path) => {
    const before = seen.get(path) ?? 0;
    const r = await get(path);
    expect(r.status).toBe(502);
    // A backend that answered, however wrongly, got the request: a GET is not sent to it again. Only a
    // connection that went away before any answer is (the reset, below).
    expect((seen.get(path) ?? 0) - before).toBe(path === '/orders/reset' ? 2 : 1);
    expect(JSON.parse(r.text)).toEqual({ error: 'bad_gateway', reason: 'upstream_unreachable' });
    expect(r.text).not.toContain('okokoko');
    expect(auditFor(path).at(-1)).toMatchObject({ reason: 'upstream_unreachable', status: 502 });
    expect((await get('/orders/close-each')).status).toBe(200);
  });

  it('a body cut short after the head: the client connection is cut, never a short "complete" answer', async () => {
    const r = await getPartial('/orders/truncated');
    expect(r.status).toBe(200);
    expect(r.complete).toBe(false);
    expect(r.body.length).toBeLessThan(100);
    await vi.waitFor(() => expect(auditFor('/orders/truncated').at(-1)).toMatchObject({ decision: 'allow', reason: 'upstream_unreachable', status: 200 }));
    expect((await get('/orders/close-each')).status).toBe(200);
  });
});

describe('a reset before any answer (the backend closed an idle pooled connection)', () => {
  it.each(['GET', 'HEAD', 'DELETE'])('%s without a body is sent once more on another connection', async (method) => {
    const before = seen.get('/orders/reset-odd') ?? 0;
    const retries = await metric('jitgate_upstream_retries_total');
    const r = await send(gate.url, '/orders/reset-odd', { method, headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    expect((seen.get('/orders/reset-odd') ?? 0) - before).toBe(2);
    expect(await metric('jitgate_upstream_retries_total')).toBe(retries + 1);
    expect(auditFor('/orders/reset-odd').at(-1)).toMatchObject({ decision: 'allow', reason: 'granted', status: 200, method });
  });

  it('only once: a backend that resets every time gets two attempts, then the client gets 502', async () => {
    const before = seen.get('/orders/reset') ?? 0;
    const r = await get('/orders/reset');
    expect(r.status).toBe(502);
    expect((seen.get('/orders/reset') ?? 0) - before).toBe(2);
  });

  it.each([
    ['POST', 'hello'],
    ['PUT', 'hello'],
  ])('%s with a body is never sent twice: 502', async (method, body) => {
    const before = seen.get('/orders/reset-odd') ?? 0;
    // Line the backend's counter up so this request is the one that gets reset.
    if (before % 2 === 1) await get('/orders/reset-odd');
    const at = seen.get('/orders/reset-odd') ?? 0;
    const r = await send(gate.url, '/orders/reset-odd', { method, body, headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' } });
    expect(r.status).toBe(502);
    expect((seen.get('/orders/reset-odd') ?? 0) - at).toBe(1);
  });
});
