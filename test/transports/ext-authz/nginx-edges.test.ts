/**
 * Issue 21 end to end behind the real nginx `auth_request` (config/nginx/forward-auth.conf, ports
 * replaced), with `headers.method_override: strip` — the configuration the issue showed a DELETE
 * getting through on a grant without DELETE:
 * - item 2: method-override / URL-rewrite headers never reach the backend (jitgate refuses, and the
 *   example strips them too);
 * - item 1: a client's X-Forwarded-Host cannot reach jitgate or the backend in place of nginx's;
 * - item 3: client-written forwarding headers (Forwarded, X-Real-IP, …) do not reach the backend;
 * - item 7: dot-like segments never reach the backend.
 * jitgate's 400 becomes nginx's 500 (auth_request passes only 2xx/401/403): still closed.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { findNginx, startForwardAuthExample } from '../../fixtures/nginx.ts';
import { sign } from '../../fixtures/tokens.ts';
import { httpCall, startHarness, type Harness } from './helpers.ts';

const NGINX = findNginx();

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

let keys: TestKeys;
let h: Harness;
let backend: Server;
let nginx: Awaited<ReturnType<typeof startForwardAuthExample>> | undefined;
const seen: Seen[] = [];

describe.skipIf(NGINX === undefined)('nginx auth_request → jitgate forward-auth (method_override: strip) → backend', () => {
  beforeAll(async () => {
    keys = await makeTestKeys();
    h = await startHarness(keys, (c) => (c.headers = { method_override: 'strip' }));
    backend = createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' }).end('backend');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    nginx = await startForwardAuthExample(NGINX!, h.httpPort, (backend.address() as AddressInfo).port);
  });

  afterAll(async () => {
    await nginx?.stop();
    await new Promise<void>((r) => backend?.close(() => r()));
    await h?.close();
  });

  const call = async (method: string, path: string, headers: string[] = []) =>
    httpCall(nginx!.port, method, path, ['host', 'orders.internal', 'authorization', `Bearer ${await sign(keys.a, { jti: 'ngx-edge' })}`, ...headers]);

  it('control: PATCH inside the grant reaches the backend as PATCH', async () => {
    const before = seen.length;
    const r = await call('PATCH', '/orders/42');
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(seen.at(-1)!.method).toBe('PATCH');
  });

  it.each([
    ['X-HTTP-Method-Override', 'DELETE'],
    ['X-HTTP-Method', 'DELETE'],
    ['X-Method-Override', 'DELETE'],
    ['x-http-method-override', 'DELETE'],
    ['X-Original-URL', '/admin'],
    ['X-Rewrite-URL', '/admin'],
  ])('PATCH with %s: %s is refused; the backend sees nothing', async (name, value) => {
    const before = seen.length;
    const r = await call('PATCH', '/orders/42', [name, value]);
    expect(r.status).toBe(500); // jitgate's 400, as auth_request reports it
    expect(seen.length).toBe(before);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'deny', reason: name.startsWith('X-Original') || name.startsWith('X-Rewrite') ? 'url_override' : 'method_override' });
  });

  it('nginx itself answers 400 to a Host that is not an authority, and to two Host lines', async () => {
    const before = seen.length;
    expect((await httpCall(nginx!.port, 'GET', '/orders/42', ['host', 'orders.internal/admin?'])).status).toBe(400);
    expect((await httpCall(nginx!.port, 'GET', '/orders/42', ['host', 'orders.internal', 'host', 'evil.example'])).status).toBe(400);
    expect(seen.length).toBe(before);
  });

  it("a client's X-Forwarded-Host reaches neither jitgate nor the backend in place of nginx's", async () => {
    const before = seen.length;
    const r = await call('GET', '/orders/42', ['x-forwarded-host', 'orders.internal/admin?']);
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(seen.at(-1)!.headers['x-forwarded-host']).toBe('orders.internal');
  });

  it('client-written forwarding headers do not reach the backend; nginx sets its own', async () => {
    const spoofed = [
      'forwarded', 'for=6.6.6.6;host=evil.example;proto=https',
      'x-real-ip', '6.6.6.6',
      'x-forwarded-for', '6.6.6.6',
      'x-forwarded-proto', 'https',
      'x-forwarded-prefix', '/admin',
      'x-forwarded-port', '443',
      'x-forwarded-ssl', 'on',
    ];
    const r = await call('GET', '/orders/42', spoofed);
    expect(r.status).toBe(200);
    const got = seen.at(-1)!.headers;
    expect(got['forwarded']).toBeUndefined();
    expect(got['x-forwarded-prefix']).toBeUndefined();
    expect(got['x-forwarded-ssl']).toBeUndefined();
    expect(got['x-real-ip']).toBe('127.0.0.1');
    expect(got['x-forwarded-proto']).toBe('http');
    expect(got['x-forwarded-port']).toBe(String(nginx!.port));
    expect(got['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1'); // appended: the backend trusts only the last hop
  });

  it.each(['/orders/42/..%20', '/orders/42/..%E2%88%95', '/orders/42/..%C2%A5', '/orders/42/..%3F'])('dot-like %s never reaches the backend', async (path) => {
    const before = seen.length;
    const r = await call('GET', path);
    expect(r.status).toBe(500);
    expect(seen.length).toBe(before);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', reason: 'path_dot_like_segment' });
  });
});
