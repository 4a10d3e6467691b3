/**
 * A real nginx (Debian's package; .ci/run installs it) with auth_request pointing at jitgate's
 * forward-auth endpoint, in front of a recording backend — using config/nginx/forward-auth.conf
 * itself, with only its ports replaced. Allow, 401, 403 and path tricks end to end; the backend
 * sees only the allowed requests, without Authorization and without client-chosen x-jit-*.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { makeKey, tempDir, type TestKey } from '../../fixtures/keys.ts';
import { dpopProof } from '../../fixtures/dpop-proof.ts';
import { DROPPED_FORWARDING } from '../../../src/transports/proxy/forwarding-headers.ts';
import { calculateJwkThumbprint } from 'jose';
import { findNginx, runNginx, startForwardAuthExample } from '../../fixtures/nginx.ts';
import { freePort } from '../../fixtures/ports.ts';
import { NOW, sign } from '../../fixtures/tokens.ts';
import { CLIENT_CERT_HEADERS } from '../../../src/transports/proxy/client-cert-headers.ts';
import { httpCall, startHarness, type Harness } from './helpers.ts';
import { identityHeadersOf, IDENTITY_ANSWER, startAllowStandIn, type AllowStandIn } from '../../fixtures/allow-stand-in.ts';

const NGINX = findNginx();
const EXAMPLE = fileURLToPath(new URL('../../../config/nginx/forward-auth.conf', import.meta.url));

if (NGINX === undefined) {
  console.warn('nginx.test.ts: SKIPPED — no nginx binary (apt-get install -y nginx; .ci/run does this)');
}

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

let keys: TestKeys;
let client: TestKey;
let h: Harness;
let backend: Server;
let nginx: Awaited<ReturnType<typeof runNginx>> | undefined;
let nginxPort = 0;
let dir = '';
const seen: Seen[] = [];

describe.skipIf(NGINX === undefined)('nginx auth_request → jitgate forward-auth → backend', () => {
  beforeAll(async () => {
    keys = await makeTestKeys();
    // DPoP nonces on (RFC 9449 §9), nginx trusted for the origin: only DPoP-bound tokens are affected.
    h = await startHarness(keys, (c) => (c.dpop = { use_nonce: true, trusted_proxies: ['127.0.0.1/32'] }));
    client = await makeKey('ES256', 'client');
    backend = createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' }).end('backend');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendPort = (backend.address() as AddressInfo).port;
    nginxPort = await freePort();

    dir = await tempDir('jitgate-nginx-');
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(join(dir, d));
    const example = await readFile(EXAMPLE, 'utf8');
    const site = example
      .replace('server 127.0.0.1:9191;', `server 127.0.0.1:${h.httpPort};`)
      .replace('server 127.0.0.1:8081;', `server 127.0.0.1:${backendPort};`)
      .replace('listen 127.0.0.1:8080;', `listen 127.0.0.1:${nginxPort};`);
    expect(site).not.toBe(example);
    await writeFile(join(dir, 'site.conf'), site);
    await writeFile(
      join(dir, 'nginx.conf'),
      [
        'daemon off;',
        'master_process off;', // one process, no privilege switch: runs the same as root (CI) or not
        `pid ${join(dir, 'nginx.pid')};`,
        `error_log ${join(dir, 'error.log')} warn;`,
        'events { worker_connections 64; }',
        'http {',
        '  access_log off;',
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t === 'client_body' ? 'body' : t)};`),
        `  include ${join(dir, 'site.conf')};`,
        '}',
        '',
      ].join('\n'),
    );
    nginx = await runNginx(NGINX!, dir, join(dir, 'nginx.conf'), nginxPort);
  });

  afterAll(async () => {
    await nginx?.stop();
    await new Promise<void>((r) => backend?.close(() => r()));
    await h?.close();
  });

  const get = (path: string, headers: string[] = []) => httpCall(nginxPort, 'GET', path, ['host', 'orders.internal', ...headers]);
  const bearer = async (jti: string) => ['authorization', `Bearer ${await sign(keys.a, { jti })}`];

  const identity = (s: Seen) => Object.fromEntries(Object.entries(s.headers).filter(([k]) => k.startsWith('x-jit') || k.startsWith('x_jit')));

  it('allow: the backend gets the request with exactly the identity headers jitgate set, without Authorization', async () => {
    const before = seen.length;
    const r = await get('/orders/42/items?limit=5', await bearer('n-allow'));
    expect(r.status).toBe(200);
    expect(r.body).toBe('backend');
    expect(seen.length).toBe(before + 1);
    const s = seen.at(-1)!;
    expect(s.url).toBe('/orders/42/items?limit=5');
    expect(s.headers['authorization']).toBeUndefined();
    expect(identity(s)).toEqual({ 'x-jit-subject': 'spiffe://prod/ci-deployer', 'x-jit-token-id': 'n-allow', 'x-jit-issuer': 'https://broker.internal', 'x-jit-txn': 'deploy-4711' });
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'allow', method: 'GET', path: '/orders/42/items', jti: 'n-allow' });
  });

  // SPEC §4. nginx cannot drop headers by prefix and its subrequest carries them to jitgate, which
  // refuses (400 identity_header; nginx answers 500): found by a review that saw all three reach the backend.
  it.each([
    ['X-Jit-Spiffe-Id', 'spiffe://prod/admin'],
    ['X-Jit-Client-Cert-Sha256', 'forged'],
    ['X-Jit-Role', 'admin'],
    ['x-jit-subject', 'spoofed'],
    ['X-Jit-Actor', 'spiffe://evil'],
  ])('a client-sent %s never reaches the backend, with a valid token', async (name, value) => {
    const before = seen.length;
    const r = await get('/orders/42', [...(await bearer('n-spoof')), name, value]);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(seen.length).toBe(before);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'deny', reason: 'identity_header' });
  });

  it('on a public route: no identity header reaches the backend, and a client-sent one is refused', async () => {
    const before = seen.length;
    const open = await get('/healthz');
    expect(open.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(identity(seen.at(-1)!)).toEqual({});
    const spoofed = await get('/healthz', ['X-Jit-Spiffe-Id', 'spiffe://prod/admin']);
    expect(spoofed.status).toBeGreaterThanOrEqual(400);
    expect(seen.length).toBe(before + 1);
  });

  it('401 with the challenge, 403 outside the grant; the backend sees neither', async () => {
    const before = seen.length;
    const none = await get('/orders/42');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="jitgate"');
    const scope = await get('/orders/43', await bearer('n-403'));
    expect(scope.status).toBe(403);
    const method = await httpCall(nginxPort, 'DELETE', '/orders/42', ['host', 'orders.internal', ...(await bearer('n-del'))]);
    expect(method.status).toBe(403);
    expect(seen.length).toBe(before);
  });

  it('a client-written certificate header never reaches jitgate: a certificate-bound token without a certificate stays 401', async () => {
    // The thumbprint is in the token, so a client could name it; only the proxy may speak for the connection.
    const thumbprint = randomBytes(32);
    const token = await sign(keys.a, { jti: 'n-xfcc', cnf: { 'x5t#S256': thumbprint.toString('base64url') } });
    const before = seen.length;
    const plain = await get('/orders/42', ['authorization', `Bearer ${token}`]);
    expect(plain.status).toBe(401);
    const forged = await get('/orders/42', ['authorization', `Bearer ${token}`, 'x-forwarded-client-cert', `Hash=${thumbprint.toString('hex')};URI=spiffe://prod/ci-deployer`]);
    expect(forged.status).toBe(401);
    expect(forged.headers['www-authenticate']).toContain('cert_required');
    expect(seen.length).toBe(before);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'deny', reason: 'cert_required' });
    expect(h.audit.at(-1)).not.toHaveProperty('client_cert_sha256');
  });

  it('the backend never gets a client-written certificate header (every name the proxy drops, client-cert-headers.ts)', async () => {
    const before = seen.length;
    const sent = CLIENT_CERT_HEADERS.flatMap((n) => [n, n.endsWith('verify') ? 'SUCCESS' : 'forged']);
    const r = await get('/orders/42', [...(await bearer('n-xfcc-up')), ...sent]);
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(CLIENT_CERT_HEADERS.filter((n) => seen.at(-1)!.headers[n] !== undefined)).toEqual([]);
  });

  // A probe: behind this example the client never got the nonce, so with dpop.use_nonce every
  // DPoP-bound request was refused for good (auth_request hands back only WWW-Authenticate).
  it('dpop.use_nonce: the 401 carries DPoP-Nonce to the client, and a proof with it is allowed', async () => {
    const tok = await sign(keys.a, { jti: 'n-dpop', cnf: { jkt: await calculateJwkThumbprint(client.publicJwk, 'sha256') } });
    const htu = 'http://orders.internal/orders/42';
    const before = seen.length;
    const first = await get('/orders/42', ['authorization', `DPoP ${tok}`, 'dpop', await dpopProof(client, tok, { jti: 'n-p1', htu, iat: NOW })]);
    expect(first.status).toBe(401);
    expect(first.headers['www-authenticate']).toContain('use_dpop_nonce');
    const nonce = first.headers['dpop-nonce'];
    expect(typeof nonce === 'string' && nonce.length > 0, 'DPoP-Nonce header').toBe(true);
    const second = await get('/orders/42', ['authorization', `DPoP ${tok}`, 'dpop', await dpopProof(client, tok, { jti: 'n-p2', htu, iat: NOW, nonce: nonce as string })]);
    expect(second.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(seen.at(-1)!.headers['dpop']).toBeUndefined();
  });

  it('no forwarding header the proxy drops (forwarding-headers.ts) reaches the backend as the client wrote it', async () => {
    const before = seen.length;
    const sent = DROPPED_FORWARDING.flatMap((n) => [n, n === 'forwarded' ? 'for=6.6.6.6;proto=https' : 'spoofed']);
    const r = await get('/orders/42', [...(await bearer('n-fwd-up')), ...sent, 'x-real-ip', '6.6.6.6', 'x_forwarded_proto', 'https']);
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    const got = seen.at(-1)!.headers;
    expect(DROPPED_FORWARDING.filter((n) => got[n] !== undefined)).toEqual([]);
    expect([got['x-real-ip'], got['x_forwarded_proto']]).toEqual(['127.0.0.1', undefined]);
  });

  // A probe: the example set the URI in both header families, so a target near limits.max_target_length (8 KiB)
  // made the subrequest's headers exceed limits.max_header_bytes (16 KiB): 431, which nginx turns into 500.
  it('a request target of 7,900 bytes is allowed as on the proxy', async () => {
    const before = seen.length;
    const path = `/orders/42/${'a'.repeat(7_900)}`;
    const r = await get(path, await bearer('n-long'));
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(seen.at(-1)!.url).toBe(path);
  });

  it('a client-sent X-Forwarded-Uri does not widen the grant', async () => {
    const before = seen.length;
    const r = await get('/orders/43', [...(await bearer('n-spoof')), 'x-forwarded-uri', '/orders/42', 'x-original-uri', '/orders/42', 'x-forwarded-method', 'GET']);
    expect(r.status).toBe(403);
    expect(seen.length).toBe(before);
  });

  it.each(['/orders/42/../43', '/orders/42/%2e%2e/43', '/orders/42%2F..%2F43', '/orders/42/..;/43', '//orders/42', '/orders/42/%252e%252e/43'])(
    'path trick %s never reaches the backend',
    async (path) => {
      const before = seen.length;
      const r = await get(path, await bearer('n-trick'));
      expect(r.status).toBeGreaterThanOrEqual(400); // jitgate's 400 becomes nginx's 500: still closed
      expect(seen.length).toBe(before);
    },
  );
});

describe.skipIf(NGINX === undefined)('nginx example: every identity header of the allow answer reaches the backend', () => {
  let standIn: AllowStandIn | undefined;
  let proxy: Awaited<ReturnType<typeof startForwardAuthExample>> | undefined;

  beforeAll(async () => {
    standIn = await startAllowStandIn();
    proxy = await startForwardAuthExample(NGINX!, standIn.authPort, standIn.backendPort);
  });

  afterAll(async () => {
    await proxy?.stop();
    await standIn?.close();
  });

  it('copies all seven, the two certificate ones included', async () => {
    const r = await httpCall(proxy!.port, 'GET', '/orders/42', ['host', 'orders.internal']);
    expect(r.status).toBe(200);
    expect(standIn!.got.length).toBe(1);
    expect(identityHeadersOf(standIn!.got[0]!)).toEqual(IDENTITY_ANSWER);
  });
});
