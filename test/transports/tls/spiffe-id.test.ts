/**
 * What counts as a SPIFFE ID (SPIFFE-ID spec §2, X509-SVID §2): a URI SAN that is not a valid one —
 * upper-case trust domain, port, userinfo, query, fragment, trailing slash, percent-encoding, dot or
 * empty segments, no workload path — names no workload: `spiffe_subject` refuses it with
 * spiffe_id_missing and the backend gets no x-jit-spiffe-id. Real certificates on the TLS listener.
 */
import { rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLeaf, type CertFiles } from '../../../src/issuing/dev-pki.ts';
import { fromX509, spiffeIdFrom } from '../../../src/transports/tls/client-cert.ts';
import { parseXfcc } from '../../../src/transports/tls/xfcc.ts';
import type { ClientCert } from '../../../src/core/cert-binding.ts';
import { makePki, type Pki } from '../../fixtures/pki.ts';
import { startGateInProcess, startRecordingUpstream, type InProcessGate, type RecordingUpstream } from '../../fixtures/servers.ts';
import { tlsCall } from './helpers.ts';

/** [label, URI] — none is a SPIFFE ID. */
const INVALID: [string, string][] = [
  ['upper-case trust domain', 'spiffe://Prod/x'],
  ['port', 'spiffe://prod:443/x'],
  ['query', 'spiffe://prod/x?a=b'],
  ['fragment', 'spiffe://prod/x#frag'],
  ['trailing slash', 'spiffe://prod/x/'],
  ['percent-encoded dash', 'spiffe://prod/a%2Db'],
  ['percent-encoded NUL', 'spiffe://prod/a%00b'],
  ['dot-dot segment', 'spiffe://prod/a/../b'],
  ['dot segment', 'spiffe://prod/a/./b'],
  ['empty segment', 'spiffe://prod/a//b'],
  ['no path', 'spiffe://prod'],
  ['root path only', 'spiffe://prod/'],
  ['no trust domain', 'spiffe:///x'],
  ['userinfo', 'spiffe://user@prod/x'],
  ['upper-case scheme', 'SPIFFE://prod/x'],
];
const VALID = ['spiffe://prod/ci-deployer', 'spiffe://example.org/ns/default/sa/web', 'spiffe://a-b_c.d9/X.y-Z_1/..a/.b'];

describe('spiffeIdFrom', () => {
  it.each(INVALID)('is undefined for %s (%s)', (_label, uri) => {
    expect(spiffeIdFrom(uri)).toBeUndefined();
  });

  it.each(VALID)('keeps %s', (uri) => {
    expect(spiffeIdFrom(uri)).toBe(uri);
  });

  it('refuses an ID longer than 2048 bytes', () => {
    const base = 'spiffe://prod/';
    expect(spiffeIdFrom(base + 'a'.repeat(2048 - base.length))).toHaveLength(2048);
    expect(spiffeIdFrom(base + 'a'.repeat(2049 - base.length))).toBeUndefined();
  });

  it('applies to XFCC URI= too', () => {
    expect((parseXfcc(`Hash=${'ab'.repeat(32)};URI=spiffe://Prod/x`) as ClientCert).spiffeId).toBeUndefined();
    expect((parseXfcc(`Hash=${'ab'.repeat(32)};URI=spiffe://prod/x`) as ClientCert).spiffeId).toBe('spiffe://prod/x');
  });
});

describe('certificates whose only URI SAN is not a SPIFFE ID, on the TLS listener', () => {
  let pki: Pki;
  let upstream: RecordingUpstream;
  let plain: InProcessGate;
  let spiffe: InProcessGate;
  const certs = new Map<string, CertFiles>();

  beforeAll(async () => {
    pki = await makePki();
    upstream = await startRecordingUpstream();
    // `#` starts a comment in openssl's extension file; `\#` is a literal one.
    await Promise.all(INVALID.map(async ([label, uri], i) => certs.set(label, await makeLeaf(pki.dir, `bad-spiffe-${i}`, 'ca', `bad ${i}`, `URI:${uri.replace('#', '\\#')}`, 'clientAuth'))));
    const tls = { cert_file: pki.server.cert, key_file: pki.server.key, client_ca_file: pki.ca.cert, require_client_cert: true };
    [plain, spiffe] = await Promise.all([
      startGateInProcess(upstream.url, (c) => (c.listen.tls = tls)),
      startGateInProcess(upstream.url, (c) => {
        c.listen.tls = tls;
        c.service.spiffe_subject = true;
      }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([plain?.close(), spiffe?.close()]);
    await Promise.all([plain, spiffe].map((g) => (g === undefined ? undefined : rm(g.dir, { recursive: true, force: true }))));
    await upstream?.close();
    await pki?.remove();
  });

  it.each(INVALID)('%s (%s): the certificate has a thumbprint but no SPIFFE ID', (label, uri) => {
    const x = new X509Certificate(certs.get(label)!.pem);
    expect(x.subjectAltName).toBe(`URI:${uri}`);
    const c = fromX509(x);
    expect(c.sha256).toBe(certs.get(label)!.x5t);
    expect(c.spiffeId).toBeUndefined();
  });

  it.each(INVALID)('%s (%s): spiffe_subject refuses a token whose sub is that URI with spiffe_id_missing', async (label, uri) => {
    const token = await spiffe.token({ sub: uri });
    const r = await tlsCall(spiffe.running.listeners.proxy.port, '/orders/42', { ca: pki.ca, client: certs.get(label)!, headers: { authorization: `Bearer ${token}` } });
    expect([r.status, r.reason]).toEqual([401, 'spiffe_id_missing']);
  });

  it.each(INVALID)('%s (%s): the backend gets the thumbprint and no x-jit-spiffe-id', async (label) => {
    const token = await plain.token();
    const before = upstream.requests.length;
    const r = await tlsCall(plain.running.listeners.proxy.port, '/orders/42', { ca: pki.ca, client: certs.get(label)!, headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    const got = upstream.requests[before]!;
    expect(got.headers['x-jit-client-cert-sha256']).toBe(certs.get(label)!.x5t);
    expect(got.headers['x-jit-spiffe-id']).toBeUndefined();
  });
});
