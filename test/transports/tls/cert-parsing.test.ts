/**
 * The pieces that turn certificates and Envoy's XFCC into the core's ClientCert, and the core's
 * certificate rules, on their own: quoting, the last element, SAN parsing, thumbprint syntax.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCertBinding, isThumbprint, type ClientCert } from '../../../src/core/cert-binding.ts';
import type { VerifiedToken } from '../../../src/core/verified-token.ts';
import { fromPem, fromX509, uriSans } from '../../../src/transports/tls/client-cert.ts';
import { parseTraefikCert, parseXfcc, trustedProxyCert } from '../../../src/transports/tls/xfcc.ts';
import { makePki, SPIFFE_A, traefikCertHeader, type Pki } from '../../fixtures/pki.ts';

let pki: Pki;
beforeAll(async () => {
  pki = await makePki();
});
afterAll(() => pki?.remove());

describe('XFCC', () => {
  it('reads Hash/URI from the last element, honouring quotes with commas, semicolons and \\"', () => {
    const h = 'ab'.repeat(32);
    const v = `By=spiffe://a;Hash=${'cd'.repeat(32)};URI=spiffe://first,By="spiffe://b,c;d=e";Subject="CN=\\"x\\", O=y";Hash=${h};URI=${SPIFFE_A}`;
    const c = parseXfcc(v) as ClientCert;
    expect(c.sha256).toBe(Buffer.from(h, 'hex').toString('base64url'));
    expect(c.spiffeId).toBe(SPIFFE_A);
    expect([c.notBeforeMs, c.notAfterMs]).toEqual([-Infinity, Infinity]);
  });

  it('takes the certificate from Cert= (thumbprint, SPIFFE ID and validity), whatever URI= says', () => {
    const c = parseXfcc(`Hash=${pki.workloadA.hashHex};Cert="${encodeURIComponent(pki.workloadA.pem)}";URI=spiffe://prod/liar`) as ClientCert;
    expect(c.sha256).toBe(pki.workloadA.x5t);
    expect(c.spiffeId).toBe(SPIFFE_A);
    expect(Number.isFinite(c.notAfterMs)).toBe(true);
  });

  it('names no SPIFFE ID for several URI= or a non-spiffe URI', () => {
    const h = `Hash=${'ab'.repeat(32)}`;
    expect((parseXfcc(`${h};URI=spiffe://a;URI=spiffe://b`) as ClientCert).spiffeId).toBeUndefined();
    expect((parseXfcc(`${h};URI=https://a`) as ClientCert).spiffeId).toBeUndefined();
    expect((parseXfcc(`${h};URI="spiffe://a b"`) as ClientCert).spiffeId).toBeUndefined();
  });

  it.each(['', ',', 'Hash', '=x', `Hash=${'a'.repeat(64)},`, `Hash=${'a'.repeat(64)};"x"=1`, `Hash=a"b`, `Hash="${'a'.repeat(64)}"x`])('is malformed: %j', (v) => {
    expect(parseXfcc(v)).toBe('malformed');
  });

  it('is believed only from a trusted peer', () => {
    const raw = ['X-Forwarded-Client-Cert', `Hash=${pki.workloadA.hashHex}`];
    const trusted = { has: (a: string | undefined) => a === '10.0.0.1' };
    expect(trustedProxyCert(raw, '10.0.0.2', trusted)).toBeUndefined();
    expect((trustedProxyCert(raw, '10.0.0.1', trusted) as ClientCert).sha256).toBe(pki.workloadA.x5t);
    expect(trustedProxyCert(['host', 'x'], '10.0.0.1', trusted)).toBeUndefined();
  });
});

describe("Traefik's X-Forwarded-Tls-Client-Cert", () => {
  it('reads the leaf from the v3 form (bare body) and the v2 form (URL-escaped body)', () => {
    for (const escape of [false, true]) {
      const c = parseTraefikCert(traefikCertHeader([pki.workloadA.pem], escape)) as ClientCert;
      expect(c.sha256).toBe(pki.workloadA.x5t);
      expect(c.spiffeId).toBe(SPIFFE_A);
      expect(Number.isFinite(c.notAfterMs)).toBe(true);
    }
  });

  it('with several certificates, the first is the client\'s; the rest is its chain', () => {
    expect((parseTraefikCert(traefikCertHeader([pki.workloadA.pem, pki.ca.pem])) as ClientCert).sha256).toBe(pki.workloadA.x5t);
    expect((parseTraefikCert(traefikCertHeader([pki.workloadB.pem, pki.workloadA.pem], true)) as ClientCert).sha256).toBe(pki.workloadB.x5t);
  });

  // Values built from the PKI, which exists only once beforeAll ran.
  it.each<[string, (p: Pki) => string]>([
    ['empty', () => ''],
    ['a trailing comma', (p) => `${traefikCertHeader([p.ca.pem])},`],
    ['the PEM with its BEGIN/END lines (Envoy\'s form)', (p) => encodeURIComponent(p.workloadA.pem)],
    ['base64 that is not a certificate', () => Buffer.from('not a certificate').toString('base64')],
    ['a bad escape', () => '%E0%A4%A'],
    ['text', () => 'garbage'],
    ['a chain element that is not base64', (p) => `${traefikCertHeader([p.workloadA.pem])},not base64!`],
    ['an XFCC element', () => `Hash=${'ab'.repeat(32)}`],
  ])('is malformed: %s', (_what, value) => {
    expect(parseTraefikCert(value(pki))).toBe('malformed');
  });

  it('is believed only from a trusted peer, on one line, and never beside XFCC', () => {
    const value = traefikCertHeader([pki.workloadA.pem]);
    const raw = ['X-Forwarded-Tls-Client-Cert', value];
    const trusted = { has: (a: string | undefined) => a === '10.0.0.1' };
    expect(trustedProxyCert(raw, '10.0.0.2', trusted)).toBeUndefined();
    expect((trustedProxyCert(raw, '10.0.0.1', trusted) as ClientCert).sha256).toBe(pki.workloadA.x5t);
    expect(trustedProxyCert([...raw, 'x-forwarded-tls-client-cert', value], '10.0.0.1', trusted)).toBe('malformed');
    expect(trustedProxyCert([...raw, 'x-forwarded-client-cert', `Hash=${pki.workloadA.hashHex}`], '10.0.0.1', trusted)).toBe('malformed');
    expect(trustedProxyCert([...raw, 'x-forwarded-client-cert', `Hash=${pki.workloadA.hashHex}`], '10.0.0.2', trusted)).toBeUndefined();
  });
});

describe('certificates', () => {
  it('the thumbprint is base64url SHA-256 of the DER; the SPIFFE ID the one URI SAN', () => {
    const c = fromX509(new X509Certificate(pki.workloadA.pem));
    expect(c.sha256).toBe(pki.workloadA.x5t);
    expect(c.spiffeId).toBe(SPIFFE_A);
    expect(fromX509(new X509Certificate(pki.server.pem)).spiffeId).toBeUndefined();
  });

  it('garbage PEM is null, not a throw', () => {
    expect(fromPem('nope')).toBeNull();
    expect(fromPem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toBeNull();
  });

  it('SAN text: quoted values cannot pose as two entries', () => {
    expect(uriSans('URI:spiffe://a, DNS:b, URI:spiffe://c')).toEqual(['spiffe://a', 'spiffe://c']);
    expect(uriSans('URI:"spiffe://a, URI:spiffe://b"')).toEqual(['spiffe://a, URI:spiffe://b']);
    expect(uriSans(undefined)).toEqual([]);
  });
});

describe('core rules', () => {
  const x5t = Buffer.alloc(32, 7).toString('base64url');
  const tok = (over: Partial<VerifiedToken> = {}) => ({ sub: SPIFFE_A, cnfX5t: undefined, ...over }) as VerifiedToken;
  const cert = (over: Partial<ClientCert> = {}): ClientCert => ({ sha256: x5t, spiffeId: SPIFFE_A, notBeforeMs: 0, notAfterMs: 10_000, ...over });
  const none = { requireBinding: false, spiffeSubject: false };

  it('thumbprint syntax: 43 canonical base64url characters of 32 bytes', () => {
    expect(isThumbprint(x5t)).toBe(true);
    expect(isThumbprint(x5t.slice(0, 42) + 'B')).toBe(false); // non-canonical last character
    expect(isThumbprint(x5t + '=')).toBe(false);
    expect(isThumbprint(42)).toBe(false);
  });

  it('binding, requirement, validity and SPIFFE checks in order', () => {
    expect(checkCertBinding(tok(), undefined, none, 5)).toBeUndefined();
    expect(checkCertBinding(tok(), undefined, { ...none, requireBinding: true }, 5)).toBe('cert_binding_required');
    expect(checkCertBinding(tok({ cnfX5t: x5t }), undefined, none, 5)).toBe('cert_required');
    expect(checkCertBinding(tok({ cnfX5t: x5t }), cert({ sha256: undefined }), none, 5)).toBe('cert_required');
    expect(checkCertBinding(tok({ cnfX5t: x5t }), cert(), none, 5)).toBeUndefined();
    expect(checkCertBinding(tok({ cnfX5t: x5t }), cert({ sha256: 'other' }), none, 5)).toBe('cert_binding_mismatch');
    expect(checkCertBinding(tok({ cnfX5t: x5t }), cert(), none, 10_000)).toBe('client_cert_expired');
    expect(checkCertBinding(tok({ cnfX5t: x5t }), cert({ notBeforeMs: 6 }), none, 5)).toBe('client_cert_not_yet_valid');
    const spiffe = { ...none, spiffeSubject: true };
    expect(checkCertBinding(tok(), undefined, spiffe, 5)).toBe('spiffe_id_missing');
    expect(checkCertBinding(tok(), cert({ spiffeId: undefined }), spiffe, 5)).toBe('spiffe_id_missing');
    expect(checkCertBinding(tok({ sub: 'spiffe://prod/b' }), cert(), spiffe, 5)).toBe('spiffe_id_mismatch');
    expect(checkCertBinding(tok(), cert(), spiffe, 5)).toBeUndefined();
  });
});
