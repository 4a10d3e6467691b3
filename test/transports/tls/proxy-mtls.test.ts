/**
 * The proxy over TLS with client certificates (SPEC §11): certificate-bound tokens (RFC 8705 §3),
 * require_client_cert, the SPIFFE subject rule, the connection identity headers and their
 * anti-spoofing, forged XFCC and Traefik certificate headers, and what a presented-but-unverified certificate counts as.
 * Real TLS on loopback with a PKI made by the openssl CLI at test time.
 */
import { readFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, SPIFFE_A, SPIFFE_B, traefikCertHeader, type Pki } from '../../fixtures/pki.ts';
import { startMtlsGates, startRecordingUpstream, type InProcessGate, type MtlsGates, type RecordingUpstream } from '../../fixtures/servers.ts';
import { tlsCall, type TlsCallOptions } from './helpers.ts';

let pki: Pki;
let upstream: RecordingUpstream;
let gates: MtlsGates;
let gate: InProcessGate;
let strict: InProcessGate;
/** Here issuer A also requires certificate binding (the patch given to startMtlsGates). */
let spiffe: InProcessGate;

beforeAll(async () => {
  pki = await makePki();
  upstream = await startRecordingUpstream();
  gates = await startMtlsGates(pki, upstream.url, (c) => (c.issuers[0].require_cert_binding = true));
  ({ gate, strict, spiffe } = gates);
});
afterAll(async () => {
  await gates?.close();
  await upstream?.close();
  await pki?.remove();
});

const port = (g: InProcessGate) => g.running.listeners.proxy.port;
const call = (g: InProcessGate, token: string | undefined, opts: Partial<TlsCallOptions> = {}, path = '/orders/42') =>
  tlsCall(port(g), path, { ca: pki.ca, ...opts, headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...opts.headers } });
const audits = (g: InProcessGate) => g.logs.filter((l) => l.type === 'audit');

describe('certificate-bound token (cnf x5t#S256) on the TLS listener', () => {
  it('is allowed over a connection with that verified certificate; the backend learns the certificate', async () => {
    const token = await gate.token({ jti: 'bound-1', cnf: { 'x5t#S256': pki.workloadA.x5t } });
    const before = upstream.requests.length;
    const r = await call(gate, token, { client: pki.workloadA, headers: { 'x-jit-client-cert-sha256': 'forged', 'x-forwarded-client-cert': `Hash=${pki.workloadB.hashHex}` } });
    expect(r.status).toBe(200);
    const got = upstream.requests[before]!;
    expect(got.headers['x-jit-client-cert-sha256']).toBe(pki.workloadA.x5t);
    expect(got.headers['x-jit-spiffe-id']).toBe(SPIFFE_A);
    expect(got.headers['x-jit-subject']).toBe(SPIFFE_A);
    expect(got.headers['x-forwarded-proto']).toBe('https');
    // The client's copies never reach the backend.
    expect(got.headers['x-forwarded-client-cert']).toBeUndefined();
    expect(got.rawHeaders.filter((h) => h.toLowerCase() === 'x-jit-client-cert-sha256')).toHaveLength(1);
    const line = audits(gate).find((l) => l.jti === 'bound-1')!;
    expect(line).toMatchObject({ decision: 'allow', client_cert_sha256: pki.workloadA.x5t, spiffe_id: SPIFFE_A });
  });

  it('is refused (401 cert_binding_mismatch) over another workload\'s certificate, and never forwarded', async () => {
    const token = await gate.token({ jti: 'bound-2', cnf: { 'x5t#S256': pki.workloadA.x5t } });
    const before = upstream.requests.length;
    const r = await call(gate, token, { client: pki.workloadB });
    expect(r.status).toBe(401);
    expect(r.reason).toBe('cert_binding_mismatch');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="jitgate", error="invalid_token", error_description="cert_binding_mismatch"');
    expect(upstream.requests.length).toBe(before);
    expect(audits(gate).find((l) => l.jti === 'bound-2')).toMatchObject({ reason: 'cert_binding_mismatch', client_cert_sha256: pki.workloadB.x5t });
  });

  it('is refused (401 cert_required) without a client certificate', async () => {
    const token = await gate.token({ cnf: { 'x5t#S256': pki.workloadA.x5t } });
    const r = await call(gate, token);
    expect([r.status, r.reason]).toEqual([401, 'cert_required']);
  });

  it('checks the binding on every request: a cached token from another connection is refused', async () => {
    const token = await gate.token({ jti: 'bound-cached', cnf: { 'x5t#S256': pki.workloadA.x5t } });
    expect((await call(gate, token, { client: pki.workloadA })).status).toBe(200);
    expect((await call(gate, token, { client: pki.workloadA })).status).toBe(200);
    expect((await call(gate, token, { client: pki.workloadB })).reason).toBe('cert_binding_mismatch');
    expect((await call(gate, token)).reason).toBe('cert_required');
  });

  it.each([
    ['an untrusted CA', 'rogue'],
    ['an expired certificate', 'expired'],
    ['a not-yet-valid certificate', 'future'],
  ] as const)('counts a certificate from %s as no certificate (cert_required), even with the right thumbprint', async (_what, name) => {
    const cert = pki[name];
    const token = await gate.token({ cnf: { 'x5t#S256': cert.x5t } });
    const r = await call(gate, token, { client: cert });
    expect([r.status, r.reason]).toEqual([401, 'cert_required']);
  });

  it.each([
    ['too short', 'abc'],
    ['hex instead of base64url', 'ab'.repeat(32)],
    ['padded base64', 'A'.repeat(43) + '='],
    ['not a string', 42],
  ])('refuses a malformed x5t#S256 (%s): 401 cert_binding_malformed', async (_what, x5t) => {
    const token = await gate.token({ cnf: { 'x5t#S256': x5t } });
    const r = await call(gate, token, { client: pki.workloadA });
    expect([r.status, r.reason]).toEqual([401, 'cert_binding_malformed']);
  });

  it('leaves unbound tokens alone: allowed with or without a certificate; no certificate headers without one', async () => {
    const token = await gate.token();
    const before = upstream.requests.length;
    expect((await call(gate, token)).status).toBe(200);
    expect((await call(gate, token, { client: pki.workloadB })).status).toBe(200);
    const [plain, withCert] = upstream.requests.slice(before);
    expect(plain!.headers['x-jit-client-cert-sha256']).toBeUndefined();
    expect(plain!.headers['x-jit-spiffe-id']).toBeUndefined();
    expect(withCert!.headers['x-jit-spiffe-id']).toBe(SPIFFE_B);
  });
});

describe('TLS session resumption', () => {
  it('a resumed session still carries the verified certificate: the bound token is allowed, another workload\'s resumed session is not', async () => {
    const token = await gate.token({ cnf: { 'x5t#S256': pki.workloadA.x5t } });
    const once = (client: typeof pki.workloadA, session?: Buffer) =>
      new Promise<{ status: number; resumed: boolean; session: Buffer | undefined }>((resolve, reject) => {
        let next: Buffer | undefined;
        const req = httpsRequest(
          // `session` goes through to tls.connect (node's https types leave it out).
          { host: '127.0.0.1', port: port(gate), path: '/orders/42', servername: 'localhost', ca: readFileSync(pki.ca.cert), cert: readFileSync(client.cert), key: readFileSync(client.key), session, agent: false, headers: { authorization: `Bearer ${token}`, connection: 'close' } } as RequestOptions,
          (res) => {
            const resumed = (res.socket as TLSSocket).isSessionReused();
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, resumed, session: next }));
          },
        );
        req.on('socket', (sock) => sock.on('session', (b: Buffer) => (next = b)));
        req.on('error', reject);
        req.end();
      });
    const first = await once(pki.workloadA);
    expect(first.status).toBe(200);
    const again = await once(pki.workloadA, first.session);
    expect(again).toMatchObject({ status: 200, resumed: true });
    const b = await once(pki.workloadB);
    const bResumed = await once(pki.workloadB, b.session);
    expect(bResumed).toMatchObject({ status: 401, resumed: true });
  });
});

describe('forged x-forwarded-client-cert on the proxy listener', () => {
  it('is not believed: a bound token with only a forged XFCC naming the right certificate is refused', async () => {
    const token = await gate.token({ cnf: { 'x5t#S256': pki.workloadA.x5t } });
    const xfcc = `Hash=${pki.workloadA.hashHex};Cert="${encodeURIComponent(pki.workloadA.pem)}";URI=${SPIFFE_A}`;
    const r = await call(gate, token, { headers: { 'x-forwarded-client-cert': xfcc } });
    expect([r.status, r.reason]).toEqual([401, 'cert_required']);
  });

  it('nor is Traefik\'s x-forwarded-tls-client-cert naming the right certificate', async () => {
    const token = await gate.token({ cnf: { 'x5t#S256': pki.workloadA.x5t } });
    const r = await call(gate, token, { headers: { 'x-forwarded-tls-client-cert': traefikCertHeader([pki.workloadA.pem]) } });
    expect([r.status, r.reason]).toEqual([401, 'cert_required']);
  });

  it('is stripped before the backend, and forged identity headers are replaced by nothing', async () => {
    const token = await gate.token();
    const before = upstream.requests.length;
    const traefik = traefikCertHeader([pki.workloadA.pem]);
    const r = await call(gate, token, { headers: { 'x-forwarded-client-cert': `Hash=${pki.workloadA.hashHex}`, 'x-forwarded-tls-client-cert': traefik, 'x-forwarded-tls-client-cert-info': 'Subject%3D%22CN%3Dx%22', 'x-jit-spiffe-id': SPIFFE_A, x_jit_spiffe_id: SPIFFE_A } });
    expect(r.status).toBe(200);
    const got = upstream.requests[before]!;
    expect(got.headers['x-forwarded-client-cert']).toBeUndefined();
    expect(got.headers['x-forwarded-tls-client-cert']).toBeUndefined();
    expect(got.headers['x-forwarded-tls-client-cert-info']).toBeUndefined();
    expect(got.headers['x-jit-spiffe-id']).toBeUndefined();
    expect(got.headers['x_jit_spiffe_id']).toBeUndefined();
  });
});

describe('client-written client-certificate headers (RFC 9440 and the proxies\' spellings)', () => {
  // Named here, not imported: dropping a name from the source list must fail this test.
  const FORGED = [
    'Client-Cert', 'Client-Cert-Chain', 'X-SSL-Client-Verify', 'X-SSL-Client-S-DN', 'X-SSL-Client-I-DN', 'X-SSL-Client-Cert',
    'X-SSL-Client-Fingerprint', 'X-SSL-Client-Serial', 'X-SSL-Client-DN', 'X-SSL-Client-CN', 'X-SSL-Cert', 'X-Client-Cert',
    'X-Client-Verify', 'X-Client-DN', 'ssl-client-cert', 'SSL_CLIENT_CERT', 'SSL_CLIENT_VERIFY', 'SSL_CLIENT_S_DN',
    'X-Amzn-Mtls-Clientcert', 'X-ARR-ClientCert',
  ];

  it('never reach the backend over an mTLS connection; the identity headers carry the verified certificate', async () => {
    const token = await gate.token();
    const before = upstream.requests.length;
    const forged = `:${Buffer.from(readFileSync(pki.workloadB.cert)).toString('base64')}:`;
    const r = await call(gate, token, { client: pki.workloadA, headers: Object.fromEntries(FORGED.map((h) => [h, h.toLowerCase().includes('verify') ? 'SUCCESS' : forged])) });
    expect(r.status).toBe(200);
    const got = upstream.requests[before]!;
    const names = new Set(got.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase()));
    expect(FORGED.filter((h) => names.has(h.toLowerCase()))).toEqual([]);
    expect(got.headers['x-jit-client-cert-sha256']).toBe(pki.workloadA.x5t);
    expect(got.headers['x-jit-spiffe-id']).toBe(SPIFFE_A);
  });

  it('never reach the backend from a connection without a certificate either', async () => {
    const token = await gate.token();
    const before = upstream.requests.length;
    const r = await call(gate, token, { headers: { 'Client-Cert': ':AAAA:', 'X-SSL-Client-Verify': 'SUCCESS', 'X-SSL-Client-S-DN': 'CN=admin' } });
    expect(r.status).toBe(200);
    const got = upstream.requests[before]!;
    expect([got.headers['client-cert'], got.headers['x-ssl-client-verify'], got.headers['x-ssl-client-s-dn'], got.headers['x-jit-client-cert-sha256']]).toEqual([undefined, undefined, undefined, undefined]);
  });
});

describe('require_client_cert: true', () => {
  const handshakeFails = async (opts: Partial<TlsCallOptions>) => {
    const before = upstream.requests.length;
    const decisions = audits(strict).length;
    await expect(call(strict, await strict.token(), opts)).rejects.toThrow();
    expect(upstream.requests.length).toBe(before);
    // A failed handshake never reaches the decision: no audit line.
    expect(audits(strict).length).toBe(decisions);
  };

  it('refuses the handshake without a client certificate', () => handshakeFails({}));
  it('refuses the handshake with a certificate from an untrusted CA', () => handshakeFails({ client: pki.rogue }));
  it('refuses the handshake with an expired certificate', () => handshakeFails({ client: pki.expired }));
  it('refuses the handshake with a not-yet-valid certificate', () => handshakeFails({ client: pki.future }));

  it('accepts a verified workload certificate, and counts the failed handshakes', async () => {
    const r = await call(strict, await strict.token(), { client: pki.workloadA });
    expect(r.status).toBe(200);
    const text = await strict.running.metrics.metrics();
    const failed = /jitgate_tls_handshake_failures_total\{listener="proxy"\} (\d+)/.exec(text);
    expect(Number(failed?.[1])).toBeGreaterThanOrEqual(4);
  });

  it('a plain-HTTP client on the TLS port gets no answer from the gate', async () => {
    const decisions = audits(strict).length;
    const res = await fetch(`http://127.0.0.1:${port(strict)}/orders/42`).then(
      (r) => r.status,
      () => 'failed',
    );
    expect(res === 'failed' || res === 400).toBe(true);
    expect(audits(strict).length).toBe(decisions);
  });
});

describe('service.spiffe_subject and issuers[].require_cert_binding', () => {
  it('allows a token whose sub is the certificate\'s SPIFFE ID', async () => {
    const token = await spiffe.token({ sub: SPIFFE_A, cnf: { 'x5t#S256': pki.workloadA.x5t } });
    expect((await call(spiffe, token, { client: pki.workloadA })).status).toBe(200);
  });

  it('refuses workload A\'s token over workload B\'s connection (401 spiffe_id_mismatch)', async () => {
    // Bound to B's certificate, so only the SPIFFE rule can refuse it.
    const token = await spiffe.token({ sub: SPIFFE_A, cnf: { 'x5t#S256': pki.workloadB.x5t } });
    const r = await call(spiffe, token, { client: pki.workloadB });
    expect([r.status, r.reason]).toEqual([401, 'spiffe_id_mismatch']);
  });

  it('refuses workload B\'s token over workload A\'s connection (401 spiffe_id_mismatch)', async () => {
    const token = await spiffe.token({ sub: SPIFFE_B, cnf: { 'x5t#S256': pki.workloadA.x5t } });
    const r = await call(spiffe, token, { client: pki.workloadA });
    expect([r.status, r.reason]).toEqual([401, 'spiffe_id_mismatch']);
  });

  it('refuses an unbound token of an issuer that requires binding (401 cert_binding_required)', async () => {
    const token = await spiffe.token({ sub: SPIFFE_A });
    const r = await call(spiffe, token, { client: pki.workloadA });
    expect([r.status, r.reason]).toEqual([401, 'cert_binding_required']);
  });
});

describe('a presented certificate whose signature does not verify, where a certificate is optional', () => {
  /** workloadA's certificate with one bit of its signature flipped: OpenSSL's CERT_SIGNATURE_FAILURE. */
  function forged(): { cert: Buffer; key: Buffer } {
    const pem = readFileSync(pki.workloadA.cert, 'utf8');
    const der = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''), 'base64');
    der[der.length - 1]! ^= 1;
    const body = der.toString('base64').replace(/.{64}/g, '$&\n');
    return { cert: Buffer.from(`-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`), key: readFileSync(pki.workloadA.key) };
  }

  /** `paths` in order on one kept-alive connection presenting `client`; each status and reason (or the error). */
  async function onOneConnection(client: { cert: Buffer; key: Buffer }, headers: Record<string, string>, paths: readonly string[]): Promise<string[]> {
    const { Agent } = await import('node:https');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const seen: string[] = [];
    const sockets = new Set<unknown>();
    try {
      for (const path of paths) {
        seen.push(
          await new Promise<string>((resolve) => {
            const opts: RequestOptions = { host: '127.0.0.1', port: port(gate), path, headers, servername: 'localhost', ca: readFileSync(pki.ca.cert), ...client, agent };
            const req = httpsRequest(opts, (res) => {
              sockets.add(res.socket);
              let body = '';
              res.on('data', (c: Buffer) => (body += c));
              res.on('end', () => resolve(`${res.statusCode} ${(JSON.parse(body || '{}') as { reason?: string }).reason ?? ''}`.trim()));
            });
            req.setTimeout(5000, () => req.destroy(new Error('no answer in 5 s')));
            req.on('error', (e) => resolve(`error ${e.message}`));
            req.end();
          }),
        );
      }
    } finally {
      agent.destroy();
    }
    expect(sockets.size).toBe(1);
    return seen;
  }

  it('counts as no certificate on every request of the connection: no 400, no stuck connection, each audited as answered', async () => {
    const token = await gate.token();
    const before = audits(gate).length;
    const got = await onOneConnection(forged(), { authorization: `Bearer ${token}` }, ['/orders/42', '/orders/42/items', '/orders/1']);
    expect(got).toEqual(['200', '200', '403 path_not_granted']);
    const anonymous = await onOneConnection(forged(), {}, ['/orders/42', '/orders/42']);
    expect(anonymous).toEqual(['401 missing_token', '401 missing_token']);
    await new Promise((r) => setTimeout(r, 50));
    const lines = audits(gate).slice(before).map((l) => `${l.status} ${l.reason}`);
    expect(lines).toEqual(['200 granted', '200 granted', '403 path_not_granted', '401 missing_token', '401 missing_token']);
    expect(audits(gate).slice(before).every((l) => l.client_cert_sha256 === undefined)).toBe(true);
  });

  it('leaves nothing behind for the next connection: a verified workload right after is served', async () => {
    const token = await gate.token();
    await onOneConnection(forged(), {}, ['/orders/42']);
    expect(await onOneConnection({ cert: readFileSync(pki.workloadB.cert), key: readFileSync(pki.workloadB.key) }, { authorization: `Bearer ${token}` }, ['/orders/42', '/orders/42'])).toEqual(['200', '200']);
  });
});

describe('a TLS connection silent after its handshake', () => {
  it('is closed after limits.headers_timeout, with or without a client certificate (a re-probe: held for good)', async () => {
    const { startGateInProcess } = await import('../../fixtures/servers.ts');
    const { connect } = await import('node:tls');
    const quick = await startGateInProcess(upstream.url, (c) => {
      c.listen.tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert };
      c.limits = { headers_timeout: '1s' };
    });
    try {
      const closed = [pki.workloadA, undefined].map(
        (client) =>
          new Promise<number>((resolve, reject) => {
            let at = 0;
            const s = connect({ host: '127.0.0.1', port: port(quick), servername: 'localhost', ca: readFileSync(pki.ca.cert), ...(client === undefined ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }) }, () => (at = Date.now()));
            s.on('error', () => undefined);
            s.once('close', () => (at === 0 ? reject(new Error('closed before the handshake finished')) : resolve(Date.now() - at)));
          }),
      );
      for (const ms of await Promise.all(closed)) {
        expect(ms).toBeGreaterThanOrEqual(900);
        expect(ms).toBeLessThan(4000);
      }
    } finally {
      await quick.close();
      await (await import('node:fs/promises')).rm(quick.dir, { recursive: true, force: true });
    }
  }, 20_000);
});
