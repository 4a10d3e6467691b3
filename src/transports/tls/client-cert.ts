/**
 * Certificates → the core's ClientCert (SPEC §11), from the three places one can come from:
 * - a TLS socket of jitgate's own listener: only a certificate the handshake *verified* counts
 *   (`socket.authorized`); a presented-but-unverified one (require_client_cert: false) is no
 *   certificate at all, and so is a CA certificate (workloadCert). Read once per socket and kept on it, so a keep-alive connection's requests
 *   cost a property read, no hashing;
 * - a PEM (Envoy's `source.certificate`, XFCC `Cert=`): parsed by node:crypto, memoized by text,
 *   because Envoy sends the same certificate for every request of a connection.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { BoundedMemo } from '../../cache/bounded-memo.ts';
import type { ClientCert } from '../../core/cert-binding.ts';

const CERT = Symbol('jitgate.clientCert');

type CertSocket = TLSSocket & { [CERT]?: ClientCert | null };

/** The verified client certificate of a connection, or undefined (plain HTTP, none, or not verified). */
export function clientCertOf(socket: Socket): ClientCert | undefined {
  const s = socket as CertSocket;
  if (s.encrypted !== true) return undefined;
  let cert = s[CERT];
  if (cert === undefined) {
    cert = s.authorized === true ? certOfSocket(s) : null;
    s[CERT] = cert;
  }
  return cert ?? undefined;
}

function certOfSocket(s: TLSSocket): ClientCert | null {
  const x = s.getPeerX509Certificate();
  return x === undefined ? null : workloadCert(x);
}

/** extendedKeyUsage id-kp-clientAuth (RFC 5280 §4.2.1.12). */
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * A certificate as a client identity, or null for a CA certificate (basicConstraints cA=true):
 * an X509-SVID leaf must not be one (SPIFFE X509-SVID §4.1), and OpenSSL's chain check does not
 * refuse it, so a CA's certificate — able to mint any workload's — never names a workload here.
 * Null too for one whose extendedKeyUsage leaves out clientAuth (a server's certificate): OpenSSL
 * refuses it on jitgate's own listener (its TLS client purpose), and the same certificate forwarded by
 * a proxy (XFCC `Cert=`, gRPC `source.certificate`) named a workload until 2026-12-07 night.
 */
export function workloadCert(x: X509Certificate): ClientCert | null {
  if (x.ca) return null;
  const eku = x.keyUsage; // node: the extendedKeyUsage OIDs, undefined without the extension
  return eku !== undefined && !eku.includes(CLIENT_AUTH) ? null : fromX509(x);
}

/**
 * A SPIFFE ID as the SPIFFE-ID spec (§2) defines it, which is also what go-spiffe's parser accepts:
 * `spiffe://` in lower case; a trust domain of [a-z0-9._-] only (no upper case, port or userinfo);
 * a workload path of one or more `/segment`, each [A-Za-z0-9._-], neither `.` nor `..`; no trailing
 * slash, query, fragment or percent-encoding; at most 2048 bytes. So it is one canonical string,
 * and a header value as it stands.
 */
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(?:\/[A-Za-z0-9._-]+)+$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/**
 * The SPIFFE ID a URI is, or undefined when it is not a valid one: a URI SAN like `spiffe://Prod/x`
 * names no workload (SPIFFE X509-SVID §2), so it is never compared with `sub` nor forwarded.
 */
export function spiffeIdFrom(uri: string | undefined): string | undefined {
  if (uri === undefined || uri.length > 2048 || !SPIFFE_ID.test(uri) || DOT_SEGMENT.test(uri)) return undefined;
  return uri;
}

/**
 * A certificate's validity window in epoch ms. `validFromDate`/`validToDate` are Node ≥ 22.10; the
 * package runs on Node 20 too (engines), where only the text forms exist (the packed-install test).
 */
export function validityMs(x: X509Certificate): { readonly fromMs: number; readonly toMs: number } {
  const d = x as Partial<Pick<X509Certificate, 'validFromDate' | 'validToDate'>>;
  return { fromMs: d.validFromDate?.getTime() ?? Date.parse(x.validFrom), toMs: d.validToDate?.getTime() ?? Date.parse(x.validTo) };
}

export function fromX509(x: X509Certificate): ClientCert {
  const { fromMs, toMs } = validityMs(x);
  const uris = uriSans(x.subjectAltName);
  return Object.freeze({
    sha256: createHash('sha256').update(x.raw).digest('base64url'),
    // An X509-SVID carries exactly one URI SAN (SPIFFE X509-SVID §2); anything else names no workload.
    spiffeId: uris.length === 1 ? spiffeIdFrom(uris[0]) : undefined,
    notBeforeMs: fromMs,
    notAfterMs: toMs,
  });
}

/**
 * The URI entries of node's `subjectAltName` text (`URI:spiffe://a, DNS:b`). Node writes a value
 * that contains a comma, quote or backslash as a JSON string (`URI:"spiffe://a,b"`), so a forged
 * SAN cannot pose as two.
 */
export function uriSans(san: string | undefined): string[] {
  const out: string[] = [];
  if (san === undefined) return out;
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon === -1) break;
    const type = san.slice(i, colon);
    let value: string;
    let next: number;
    if (san.charCodeAt(colon + 1) === 0x22) {
      let j = colon + 2;
      while (j < san.length && san.charCodeAt(j) !== 0x22) j += san.charCodeAt(j) === 0x5c ? 2 : 1;
      try {
        value = JSON.parse(san.slice(colon + 1, j + 1)) as string;
      } catch {
        return []; // unreadable: claim no URI at all rather than guess
      }
      next = j + 1;
    } else {
      const comma = san.indexOf(', ', colon);
      next = comma === -1 ? san.length : comma;
      value = san.slice(colon + 1, next);
    }
    if (type === 'URI') out.push(value);
    i = san.startsWith(', ', next) ? next + 2 : next + 1;
  }
  return out;
}

/** Bound of each memo: Envoy's connections are few, an attacker's certificates are not. */
const MEMO_MAX = 1024;
const pemMemo = new BoundedMemo<string, ClientCert | null>(MEMO_MAX);
const urlMemo = new BoundedMemo<string, ClientCert | null>(MEMO_MAX);

/** A PEM certificate (one, or a chain whose first is the leaf) → ClientCert, or null when it is not one or is a CA's. */
export function fromPem(pem: string): ClientCert | null {
  const known = pemMemo.get(pem);
  if (known !== undefined) return known;
  let cert: ClientCert | null;
  try {
    // Only the first certificate counts: the leaf is what a token binds to (RFC 8705 §3.1).
    const begin = pem.indexOf('-----BEGIN CERTIFICATE-----');
    cert = begin === -1 ? null : workloadCert(new X509Certificate(pem.slice(begin)));
  } catch {
    cert = null;
  }
  return pemMemo.set(pem, cert);
}

/** Envoy's URL-encoded PEM (`include_peer_certificate`, XFCC `Cert=`) → ClientCert, or null. */
export function fromUrlEncodedPem(text: string): ClientCert | null {
  const known = urlMemo.get(text);
  if (known !== undefined) return known;
  let pem: string | undefined;
  try {
    pem = decodeURIComponent(text);
  } catch {
    pem = undefined;
  }
  return urlMemo.set(text, pem === undefined ? null : fromPem(pem));
}
