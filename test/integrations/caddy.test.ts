/**
 * A real Caddy (Debian's 2.6 package; .ci/run installs it) with forward_auth pointing at jitgate's
 * forward-auth endpoint, in front of a recording backend — running config/caddy/Caddyfile itself
 * with only its ports changed (and the site bound to loopback). Allow, 401, 403, path tricks and
 * spoofed headers end to end; the backend sees only canonical, allowed requests, with exactly the
 * identity headers Caddy copied from jitgate's answer.
 */
import { readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCaddy, runCaddy, type Caddy } from '../fixtures/caddy.ts';
import { makeTestKeys, type TestKeys } from '../fixtures/gate.ts';
import { tempDir } from '../fixtures/keys.ts';
import { freePort } from '../fixtures/ports.ts';
import { sign } from '../fixtures/tokens.ts';
import { httpCall, startHarness, type Harness } from '../transports/ext-authz/helpers.ts';
import { CLIENT_CERT_HEADERS } from '../../src/transports/proxy/client-cert-headers.ts';
import { DROPPED_FORWARDING, OVERWRITTEN_FORWARDING } from '../../src/transports/proxy/forwarding-headers.ts';
import { identityHeadersOf, IDENTITY_ANSWER, startAllowStandIn, type AllowStandIn } from '../fixtures/allow-stand-in.ts';

const CADDY = findCaddy();
const EXAMPLE = fileURLToPath(new URL('../../config/caddy/Caddyfile', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/integrations.md', import.meta.url));

// Outside CI a machine without Caddy skips this file; in CI (.ci/run sets CI=true and installs it) it must run.
const SKIP = CADDY === undefined && process.env.CI !== 'true';
if (SKIP) console.warn('caddy.test.ts: SKIPPED — no caddy binary (apt-get install -y caddy; .ci/run does this)');

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly raw: readonly string[];
}

/** The shipped Caddyfile with jitgate's, the backend's and Caddy's own ports; the site on loopback only. */
function caddyfileFor(example: string, ports: { jitgate: number; backend: number; caddy: number }): string {
  const out = example
    .replace('forward_auth 127.0.0.1:9191 {', `forward_auth 127.0.0.1:${ports.jitgate} {`)
    .replace('reverse_proxy 127.0.0.1:8081', `reverse_proxy 127.0.0.1:${ports.backend}`)
    .replace(/^:8080 \{$/m, `:${ports.caddy} {\n\tbind 127.0.0.1`);
  for (const p of [ports.jitgate, ports.backend, ports.caddy]) expect(out).toContain(`:${p}`);
  return out;
}

let keys: TestKeys;
let h: Harness;
let backend: Server;
let caddy: Caddy | undefined;
let port = 0;
let dir = '';
const seen: Seen[] = [];

describe.skipIf(SKIP)('Caddy forward_auth → jitgate forward-auth → backend', () => {
  beforeAll(async () => {
    keys = await makeTestKeys();
    h = await startHarness(keys);
    backend = createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: req.rawHeaders });
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' }).end('backend');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    port = await freePort();
    dir = await tempDir('jitgate-caddy-');
    const text = caddyfileFor(await readFile(EXAMPLE, 'utf8'), { jitgate: h.httpPort, backend: (backend.address() as AddressInfo).port, caddy: port });
    if (CADDY === undefined) throw new Error('caddy is not installed (.ci/run installs Debian\'s caddy)');
    caddy = await runCaddy(CADDY, dir, text, port);
  });

  afterAll(async () => {
    await caddy?.stop();
    await new Promise<void>((r) => backend?.close(() => r()));
    await h?.close();
    for (const d of [dir, h?.dir ?? '']) if (d !== '') await rm(d, { recursive: true, force: true });
  });

  const call = (method: string, path: string, headers: string[] = []) => httpCall(port, method, path, ['host', 'orders.internal', ...headers]);
  const bearer = async (jti: string, claims: Record<string, unknown> = {}) => ['authorization', `Bearer ${await sign(keys.a, { jti, ...claims })}`];
  const identity = (s: Seen) => Object.fromEntries(Object.entries(s.headers).filter(([k]) => k.startsWith('x-jit') || k.startsWith('x_jit')));

  it('allow: the backend gets the canonical request with the identity headers jitgate set, no credentials', async () => {
    const before = seen.length;
    const r = await call('GET', '/orders/42/items?limit=5', [...(await bearer('c-allow', { txn: 'deploy-1' })), 'dpop', 'x']);
    expect(r.status).toBe(200);
    expect(r.body).toBe('backend');
    expect(seen.length).toBe(before + 1);
    const s = seen.at(-1)!;
    expect(s.method).toBe('GET');
    expect(s.url).toBe('/orders/42/items?limit=5');
    expect(s.headers['authorization']).toBeUndefined();
    expect(s.headers['dpop']).toBeUndefined();
    expect(identity(s)).toEqual({ 'x-jit-subject': 'spiffe://prod/ci-deployer', 'x-jit-token-id': 'c-allow', 'x-jit-issuer': 'https://broker.internal', 'x-jit-txn': 'deploy-1' });
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'allow', method: 'GET', path: '/orders/42/items', jti: 'c-allow' });
  });

  it('a token with an actor: all five identity headers, exactly as jitgate set them', async () => {
    const r = await call('GET', '/orders/42', await bearer('c-act', { txn: 't-9', act: { sub: 'spiffe://prod/human/alice' } }));
    expect(r.status).toBe(200);
    const s = seen.at(-1)!;
    expect(identity(s)).toEqual({ 'x-jit-subject': 'spiffe://prod/ci-deployer', 'x-jit-token-id': 'c-act', 'x-jit-issuer': 'https://broker.internal', 'x-jit-txn': 't-9', 'x-jit-actor': 'spiffe://prod/human/alice' });
  });

  it('a client Connection header naming identity headers does not strip the ones jitgate set (a re-probe: the actor vanished)', async () => {
    const hop = ['Connection', 'X-Jit-Actor, X-Jit-Txn, X-Jit-Subject'];
    const r = await call('GET', '/orders/42', [...(await bearer('c-conn', { txn: 't-10', act: { sub: 'spiffe://prod/human/alice' } })), ...hop]);
    expect(r.status).toBe(200);
    expect(identity(seen.at(-1)!)).toEqual({ 'x-jit-subject': 'spiffe://prod/ci-deployer', 'x-jit-token-id': 'c-conn', 'x-jit-issuer': 'https://broker.internal', 'x-jit-txn': 't-10', 'x-jit-actor': 'spiffe://prod/human/alice' });
  });

  it('a certificate header in a mixed spelling Caddy cannot delete is refused by jitgate (400), never forwarded', async () => {
    const before = seen.length;
    const r = await call('GET', '/healthz', ['X-SSL_Client-Verify', 'SUCCESS']);
    expect(r.status).toBe(400);
    expect(seen.length).toBe(before);
  });

  it('spoofed identity headers, in any case or with underscores, never reach the backend', async () => {
    const before = seen.length;
    const spoof = ['X-Jit-Actor', 'spiffe://evil', 'x-jit-subject', 'spoofed', 'X-JIT-TXN', 'evil-txn', 'X_Jit_Subject', 'under', 'x-jit-role', 'admin'];
    const r = await call('GET', '/orders/42', [...(await bearer('c-spoof', { txn: undefined })), ...spoof]);
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    // No txn, no act in this token: Caddy's copy_headers sets only what jitgate answered.
    expect(identity(seen.at(-1)!)).toEqual({ 'x-jit-subject': 'spiffe://prod/ci-deployer', 'x-jit-token-id': 'c-spoof', 'x-jit-issuer': 'https://broker.internal' });
  });

  it('a client-written certificate header never reaches jitgate or the backend: a certificate-bound token without a certificate stays 401', async () => {
    // The thumbprint is in the token, so a client could name it; only the proxy may speak for the connection.
    const thumbprint = randomBytes(32);
    const before = seen.length;
    const forged = await call('GET', '/orders/42', [
      ...(await bearer('c-xfcc', { cnf: { 'x5t#S256': thumbprint.toString('base64url') } })),
      'x-forwarded-client-cert',
      `Hash=${thumbprint.toString('hex')};URI=spiffe://prod/ci-deployer`,
    ]);
    expect(forged.status).toBe(401);
    expect(forged.headers['www-authenticate']).toContain('cert_required');
    expect(seen.length).toBe(before);
    const ok = await call('GET', '/orders/42', [...(await bearer('c-xfcc-up')), 'x-forwarded-client-cert', 'Hash=00', 'x-forwarded-tls-client-cert', 'AAAA']);
    expect(ok.status).toBe(200);
    expect([seen.at(-1)!.headers['x-forwarded-client-cert'], seen.at(-1)!.headers['x-forwarded-tls-client-cert']]).toEqual([undefined, undefined]);
  });

  it('every client-certificate header the proxy drops (client-cert-headers.ts), in both spellings, never reaches the backend', async () => {
    const before = seen.length;
    const names = [...CLIENT_CERT_HEADERS, ...CLIENT_CERT_HEADERS.map((n) => n.replaceAll('-', '_'))];
    const r = await call('GET', '/orders/42', [...(await bearer('c-certs')), ...names.flatMap((n) => [n, n.endsWith('verify') ? 'SUCCESS' : 'forged'])]);
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    const got = seen.at(-1)!.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replaceAll('_', '-'));
    expect(got.filter((n) => CLIENT_CERT_HEADERS.includes(n))).toEqual([]);
  });

  // A probe: nine of these, and the `_` spellings of X-Forwarded-Proto/-For and X-Real-IP, reached the backend.
  it('no forwarding header the proxy drops or overwrites (forwarding-headers.ts), in either spelling, reaches the backend as the client wrote it', async () => {
    const before = seen.length;
    const dashed = [...DROPPED_FORWARDING, ...OVERWRITTEN_FORWARDING];
    const names = [...dashed, ...dashed.map((n) => n.replaceAll('-', '_')), 'x_forwarded_for', 'x_forwarded_proto', 'x_forwarded_host'];
    const r = await call('GET', '/orders/42', [...(await bearer('c-fwd')), ...names.flatMap((n) => [n, n.endsWith('-ip') || n.endsWith('_ip') ? '6.6.6.6' : 'https'])]);
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    const raw = seen.at(-1)!.raw;
    const got = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(got.filter((n) => names.includes(n) && !['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'].includes(n))).toEqual([]);
    // What reverse_proxy sets itself is Caddy's, not the client's.
    expect(raw.filter((_, i) => i % 2 === 1)).not.toContain('6.6.6.6');
  });

  it('a public route (no token): no identity header at all, not even Caddy 2.6 placeholder text', async () => {
    const before = seen.length;
    const r = await call('GET', '/healthz', ['X-Jit-Spiffe-Id', 'spiffe://prod/admin', 'x_jit_subject', 'spoofed']);
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(identity(seen.at(-1)!)).toEqual({});
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'allow', reason: 'public', path: '/healthz' });
  });

  it('no token → 401 with the challenge; outside the grant → 403; the backend sees neither', async () => {
    const before = seen.length;
    const none = await call('GET', '/orders/42');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="jitgate"');
    expect(JSON.parse(none.body)).toMatchObject({ reason: 'missing_token' });
    const path = await call('GET', '/orders/43', await bearer('c-path'));
    expect(path.status).toBe(403);
    expect(path.headers['www-authenticate']).toBe('Bearer realm="jitgate", error="insufficient_scope"');
    const method = await call('DELETE', '/orders/42', await bearer('c-del'));
    expect(method.status).toBe(403);
    expect(h.audit.at(-1)).toMatchObject({ transport: 'forward_auth', decision: 'deny', method: 'DELETE', reason: 'method_not_granted' });
    expect(seen.length).toBe(before);
  });

  it('client-sent X-Forwarded-Uri / X-Original-URI / X-Forwarded-Method do not widen the grant', async () => {
    const before = seen.length;
    const a = await call('GET', '/orders/43', [...(await bearer('c-fwd')), 'x-forwarded-uri', '/orders/42', 'x-forwarded-method', 'GET']);
    expect(a.status).toBe(403); // Caddy overwrote them with the real method and URI
    const b = await call('GET', '/orders/43', [...(await bearer('c-orig')), 'x-original-uri', '/orders/42']);
    expect(b.status).toBe(400); // jitgate: the two families disagree
    expect(JSON.parse(b.body)).toMatchObject({ reason: 'missing_attributes' });
    const c = await call('DELETE', '/orders/42', [...(await bearer('c-meth')), 'x-original-method', 'GET']);
    expect(c.status).toBe(400);
    expect(seen.length).toBe(before);
  });

  it('method-override and URL-rewrite headers are stripped by Caddy: judged and forwarded without them', async () => {
    const before = seen.length;
    const r = await call('GET', '/orders/42', [...(await bearer('c-ovr')), 'x-http-method-override', 'DELETE', 'X-HTTP-Method', 'DELETE', 'x-method-override', 'DELETE', 'x-original-url', '/admin', 'x-rewrite-url', '/admin']);
    expect(r.status).toBe(200);
    const s = seen.at(-1)!;
    expect(seen.length).toBe(before + 1);
    for (const n of ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url']) expect(s.headers[n]).toBeUndefined();
    // The underscore spellings (CGI-style backends read them as the dashed ones) go too.
    const u = await call('GET', '/orders/42', [...(await bearer('c-ovr-u')), 'X_HTTP_Method_Override', 'DELETE', 'x_http_method', 'DELETE', 'X_Method_Override', 'DELETE', 'x_original_url', '/admin', 'X_Rewrite_URL', '/admin']);
    expect(u.status).toBe(200);
    expect(seen.length).toBe(before + 2);
    const names = seen.at(-1)!.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => /method|original|rewrite/.test(n))).toEqual([]);
  });

  it.each(['/orders/42/../43', '/orders/42/%2e%2e/43', '/orders/42%2F..%2F43', '/orders/42%2f43', '/orders/42/..;/43', '//orders/42', '/orders/42/%252e%252e/43', '/orders/42/./items'])(
    'path trick %s: refused (400), never reaches the backend',
    async (path) => {
      const before = seen.length;
      const r = await call('GET', path, await bearer('c-trick'));
      expect(r.status).toBe(400);
      expect(seen.length).toBe(before);
    },
  );

  it('the backend saw only canonical targets, each one jitgate allowed', () => {
    expect(seen.length).toBeGreaterThan(0);
    const allowed = h.audit.filter((a) => a.transport === 'forward_auth' && a.decision === 'allow').map((a) => a.path);
    for (const s of seen) {
      const path = s.url.split('?')[0]!;
      expect(allowed).toContain(path);
      expect(path).not.toMatch(/%2f|%2e|\/\.\.?(\/|$)|\/\//i);
    }
  });

  it('docs/integrations.md shows this Caddyfile exactly as tested', async () => {
    const [docs, example] = await Promise.all([readFile(DOCS, 'utf8'), readFile(EXAMPLE, 'utf8')]);
    expect(docs).toContain('```caddyfile\n' + example.trimEnd() + '\n```');
  });
});

describe.skipIf(SKIP)('Caddyfile: every identity header of the allow answer reaches the backend', () => {
  let standIn: AllowStandIn | undefined;
  let proxy: Caddy | undefined;
  let proxyPort = 0;

  beforeAll(async () => {
    standIn = await startAllowStandIn();
    proxyPort = await freePort();
    const text = caddyfileFor(await readFile(EXAMPLE, 'utf8'), { jitgate: standIn.authPort, backend: standIn.backendPort, caddy: proxyPort });
    if (CADDY === undefined) throw new Error('caddy is not installed (.ci/run installs Debian\'s caddy)');
    proxy = await runCaddy(CADDY, await tempDir('jitgate-caddy-all-'), text, proxyPort);
  });

  afterAll(async () => {
    await proxy?.stop();
    await standIn?.close();
  });

  it('copies all seven, the two certificate ones included', async () => {
    const r = await httpCall(proxyPort, 'GET', '/orders/42', ['host', 'orders.internal']);
    expect(r.status).toBe(200);
    expect(standIn!.got.length).toBe(1);
    expect(identityHeadersOf(standIn!.got[0]!)).toEqual(IDENTITY_ANSWER);
  });
});
