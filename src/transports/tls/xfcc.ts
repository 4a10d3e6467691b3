/**
 * The client certificate a trusted proxy reports in a header (SPEC §11), in the two forms proxies
 * write:
 *
 * Envoy's `x-forwarded-client-cert` (XFCC). Format (Envoy docs, "x-forwarded-client-cert"):
 * elements separated by `,`, each a `;`-separated list of `Key=Value` pairs (By, Hash, Cert, Chain,
 * Subject, URI, DNS); a value containing `,`, `;` or `=` is double-quoted, with `\"` inside. Every
 * proxy on the way appends one element, so the LAST element is the one the nearest proxy — the one
 * jitgate trusts — wrote about its own downstream connection; earlier elements are hearsay and are
 * ignored. From the last element: `Cert=` (URL-encoded PEM) when present is authoritative
 * (thumbprint, SPIFFE ID and validity come from the certificate; a `Hash=` beside it must agree);
 * otherwise `Hash=` (hex SHA-256 of the DER) gives the thumbprint and `URI=` the SPIFFE ID.
 *
 * Traefik's `X-Forwarded-Tls-Client-Cert` (passTLSClientCert `pem: true`): the connection's
 * certificates, leaf first, each a PEM body without its BEGIN/END lines and newlines, joined with
 * `,`; Traefik v2 URL-escapes each body, v3 does not (base64 has no `%`, so both read the same).
 * The FIRST certificate is the client's. Traefik sets the header as one line, replacing any other,
 * so several lines are not Traefik's and are refused.
 *
 * Anything that does not parse — an XFCC element with neither Hash nor Cert, a bad hash, a bad
 * certificate, a Traefik body that is not base64 DER — a CA certificate as the client's (cA=true:
 * no workload's) or one without clientAuth in its extendedKeyUsage, and both headers at once are `malformed`: a
 * trusted proxy sending garbage is refused (400 client_cert_malformed), never read as "no
 * certificate".
 */
import { X509Certificate } from 'node:crypto';
import { BoundedMemo } from '../../cache/bounded-memo.ts';
import type { ClientCert } from '../../core/cert-binding.ts';
import { fromUrlEncodedPem, spiffeIdFrom, workloadCert } from './client-cert.ts';

export type XfccResult = ClientCert | 'malformed';

const HEX64 = /^[0-9a-fA-F]{64}$/;
const memo = new BoundedMemo<string, XfccResult>(1024);

/** The XFCC value (several header lines joined with `,`) → its last element's certificate. */
export function parseXfcc(value: string): XfccResult {
  const known = memo.get(value);
  if (known !== undefined) return known;
  return memo.set(value, parse(value));
}

function parse(value: string): XfccResult {
  const elements = splitElements(value);
  if (elements === null || elements.length === 0) return 'malformed';
  const pairs = elements[elements.length - 1]!;
  let hash: string | undefined;
  let cert: string | undefined;
  let uri: string | undefined;
  for (const [key, v] of pairs) {
    // Keys are case-insensitive in Envoy's parser; a repeated key is ambiguous, so refused.
    const k = key.toLowerCase();
    if (k === 'hash') {
      if (hash !== undefined) return 'malformed';
      hash = v;
    } else if (k === 'cert') {
      if (cert !== undefined) return 'malformed';
      cert = v;
    } else if (k === 'uri') {
      // Envoy writes one URI= per URI SAN; an X509-SVID has exactly one (SPIFFE X509-SVID §2).
      uri = uri === undefined ? v : '';
    }
  }
  if (hash !== undefined && !HEX64.test(hash)) return 'malformed';
  if (cert !== undefined) {
    const c = fromUrlEncodedPem(cert);
    if (c === null) return 'malformed';
    if (hash !== undefined && Buffer.from(hash, 'hex').toString('base64url') !== c.sha256) return 'malformed';
    return c;
  }
  if (hash === undefined) return 'malformed';
  return Object.freeze({
    sha256: Buffer.from(hash, 'hex').toString('base64url'),
    spiffeId: spiffeIdFrom(uri === '' ? undefined : uri),
    notBeforeMs: -Infinity,
    notAfterMs: Infinity,
  });
}

/** Elements → their [key, value] pairs, honouring quotes; null when the text does not parse. */
function splitElements(s: string): [string, string][][] | null {
  const elements: [string, string][][] = [];
  let pairs: [string, string][] = [];
  let i = 0;
  const n = s.length;
  for (;;) {
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
    const eq = s.indexOf('=', i);
    if (eq === -1) return null;
    const key = s.slice(i, eq).trim();
    if (key === '' || /[,;"]/.test(key)) return null;
    i = eq + 1;
    let v = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) return null; // unterminated quote
        const c = s[i]!;
        if (c === '\\' && i + 1 < n) {
          v += s[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          v += c;
          i++;
        }
      }
    } else {
      const start = i;
      while (i < n && s[i] !== ';' && s[i] !== ',') {
        if (s[i] === '"') return null;
        i++;
      }
      v = s.slice(start, i).trim();
    }
    pairs.push([key, v]);
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= n) break;
    if (s[i] === ';') i++;
    else if (s[i] === ',') {
      elements.push(pairs);
      pairs = [];
      i++;
    } else return null;
  }
  elements.push(pairs);
  return elements;
}

/** Traefik's header value (one line) → its first certificate. */
export function parseTraefikCert(value: string): XfccResult {
  const key = `\0traefik:${value}`; // its own keys in the shared memo: a Traefik value can look like XFCC text
  const known = memo.get(key);
  if (known !== undefined) return known;
  return memo.set(key, parseTraefik(value));
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function parseTraefik(value: string): XfccResult {
  let leaf: ClientCert | undefined;
  for (const part of value.split(',')) {
    let body = part.trim();
    if (body.includes('%')) {
      try {
        body = decodeURIComponent(body);
      } catch {
        return 'malformed';
      }
    }
    if (!BASE64.test(body) || body.length % 4 !== 0) return 'malformed';
    // Only the leaf is read (RFC 8705 §3.1 binds to it); the chain after it only has to be base64.
    if (leaf !== undefined) continue;
    try {
      const c = workloadCert(new X509Certificate(Buffer.from(body, 'base64')));
      if (c === null) return 'malformed'; // a CA's or a server's certificate names no workload
      leaf = c;
    } catch {
      return 'malformed';
    }
  }
  return leaf ?? 'malformed';
}

const XFCC = 'x-forwarded-client-cert';
const TRAEFIK = 'x-forwarded-tls-client-cert';

/**
 * The certificate a trusted proxy reported (SPEC §11), in XFCC or (forward-auth only, `traefik`)
 * Traefik's header: undefined when neither is present or the caller is not in `trusted` — from anyone
 * else both are ignored, never believed (nor parsed). XFCC on several lines is one list; both headers
 * at once, or Traefik's on several lines, is `malformed`. The ext_authz HTTP service's caller is Envoy,
 * which speaks XFCC only: there Traefik's header is not a source (a black-box probe found it believed).
 */
export function trustedProxyCert(rawHeaders: readonly string[], peer: string | undefined, trusted: { has(address: string | undefined): boolean }, traefikHeader = true): XfccResult | undefined {
  let xfcc: string | undefined;
  let traefik: string | undefined;
  let traefikLines = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 23 && name.toLowerCase() === XFCC) xfcc = xfcc === undefined ? rawHeaders[i + 1]! : `${xfcc},${rawHeaders[i + 1]!}`;
    else if (traefikHeader && name.length === 27 && name.toLowerCase() === TRAEFIK) {
      traefik = rawHeaders[i + 1]!;
      traefikLines++;
    }
  }
  if ((xfcc === undefined && traefik === undefined) || !trusted.has(peer)) return undefined;
  if (traefik === undefined) return parseXfcc(xfcc!);
  if (xfcc !== undefined || traefikLines > 1) return 'malformed';
  return parseTraefikCert(traefik);
}
