/**
 * Envoy CheckRequest (as decoded by proto-loader, keepCase) → DecisionInput (SPEC §7).
 *
 * - target = attributes.request.http.path (path and query, undecoded), method = .method.
 * - headers come from `header_map` (encode_raw_headers: key + raw_value bytes, one entry per
 *   header line) when it has entries, else from the `headers` map (keys lower case).
 * - In the `headers` map Envoy has already merged repeated headers with ",". A compact JWS and a
 *   DPoP proof never contain ",", so a comma there means several Authorization (or DPoP) headers
 *   and is refused like the proxy refuses them (400 multiple_authorization / multiple_dpop).
 * - Inbound headers carrying the identity prefix are collected so the allow can remove them.
 *
 * - The client certificate (SPEC §11) is `attributes.source.certificate`, the URL-encoded PEM
 *   Envoy sends with `include_peer_certificate: true`, from Envoy's own verified downstream
 *   connection; without it, a `spiffe://` `source.principal` (the URI SAN Envoy verified) gives the
 *   SPIFFE ID alone. A certificate that does not parse is refused (client_cert_malformed).
 *
 * The map's keys are attacker-influenced: it is only probed for fixed names with Object.hasOwn
 * and walked with Object.keys — never copied into another object (STYLE habit 12).
 */
import { BoundedMemo } from '../../cache/bounded-memo.ts';
import { authorityRefusal } from '../../core/authority.ts';
import type { ClientCert } from '../../core/cert-binding.ts';
import type { DecisionInput } from '../../core/decision.ts';
import { credentialCount, METHOD_OVERRIDE_HEADERS } from '../http-input.ts';
import { fromUrlEncodedPem, spiffeIdFrom } from '../tls/client-cert.ts';

/** The parts of a decoded CheckRequest jitgate reads; everything is optional on the wire. */
export interface CheckRequestObject {
  readonly attributes?: {
    readonly request?: { readonly http?: HttpRequestObject | null } | null;
    /** The downstream peer (Envoy's AttributeContext.Peer): its verified certificate. */
    readonly source?: PeerObject | null;
  } | null;
}

interface PeerObject {
  readonly principal?: string;
  readonly certificate?: string;
}

interface HttpRequestObject {
  readonly method?: string;
  readonly path?: string;
  /** `:authority`, and the scheme the client used: the DPoP `htu` origin (RFC 9449 §4.3). */
  readonly host?: string;
  readonly scheme?: string;
  readonly headers?: Readonly<Record<string, string>> | null;
  readonly header_map?: { readonly headers?: readonly HeaderValueObject[] | null } | null;
}

interface HeaderValueObject {
  readonly key?: string;
  readonly value?: string;
  readonly raw_value?: Uint8Array;
}

export interface CheckInput {
  readonly input: DecisionInput;
  /** Inbound header names (lower case) with the identity prefix that jitgate does not set. */
  readonly stray: readonly string[];
}

const NONE: readonly string[] = Object.freeze([]);

/** `null` when the request lacks the HTTP attributes jitgate needs (→ 400 missing_attributes). */
export function checkInputFrom(req: CheckRequestObject | null, isStray: (lowerName: string) => boolean): CheckInput | null {
  const http = req?.attributes?.request?.http;
  if (http === undefined || http === null) return null;
  const method = http.method;
  const target = http.path;
  if (typeof method !== 'string' || method === '' || typeof target !== 'string' || target === '') return null;

  const list = http.header_map?.headers;
  const checked = Array.isArray(list) && list.length > 0 ? fromHeaderMap(method, target, list, isStray) : fromMap(method, target, http.headers ?? undefined, isStray);
  const host = typeof http.host === 'string' && http.host !== '' ? http.host : undefined;
  const scheme = typeof http.scheme === 'string' && http.scheme !== '' ? http.scheme : undefined;
  // The :authority Envoy saw, checked like the proxy's Host (proto3: absent and '' are the same).
  const refusal = authorityRefusal(host, host === undefined ? 0 : 1);
  const peer = peerCert(req?.attributes?.source);
  const base = { ...checked.input, host, scheme, refusal };
  const input = peer === undefined ? base : peer === 'malformed' ? { ...base, clientCertMalformed: true } : { ...base, clientCert: peer };
  return { input, stray: checked.stray };
}

const principals = new BoundedMemo<string, ClientCert>(1024);

/** `source.certificate`, else a spiffe:// `source.principal`; undefined when Envoy sent neither. */
function peerCert(source: PeerObject | null | undefined): ClientCert | 'malformed' | undefined {
  if (source === undefined || source === null) return undefined;
  const pem = source.certificate;
  if (typeof pem === 'string' && pem !== '') return fromUrlEncodedPem(pem) ?? 'malformed';
  const id = spiffeIdFrom(typeof source.principal === 'string' ? source.principal : undefined);
  if (id === undefined) return undefined;
  // Only the SPIFFE ID is known: no thumbprint, so a certificate-bound token is refused (cert_required).
  return principals.get(id) ?? principals.set(id, Object.freeze({ sha256: undefined, spiffeId: id, notBeforeMs: -Infinity, notAfterMs: Infinity }));
}

function fromHeaderMap(method: string, target: string, list: readonly HeaderValueObject[], isStray: (n: string) => boolean): CheckInput {
  let authorization: string | undefined;
  let authorizationCount = 0;
  let dpop: string | undefined;
  let dpopCount = 0;
  let methodOverride = false;
  let stray: string[] | undefined;
  for (const h of list) {
    const name = typeof h.key === 'string' ? h.key.toLowerCase() : '';
    if (name === '' || name.charCodeAt(0) === 0x3a) continue; // pseudo-headers (:path, :method) are read from their fields
    if (name === 'authorization') {
      authorizationCount++;
      authorization = valueOf(h);
    } else if (name === 'dpop') {
      dpopCount++;
      dpop = valueOf(h);
    } else if (METHOD_OVERRIDE_HEADERS.has(name)) methodOverride = true;
    else if (isStray(name)) (stray ??= []).push(name);
  }
  return {
    input: { method, target, authorization, authorizationCount: credentialCount(authorizationCount, authorization), dpop, dpopCount: credentialCount(dpopCount, dpop), methodOverride },
    stray: stray ?? NONE,
  };
}

/** raw_value bytes as Latin-1 (one char per byte, so nothing is folded or replaced); else value. */
function valueOf(h: HeaderValueObject): string {
  const raw = h.raw_value;
  if (raw !== undefined && raw !== null && raw.length > 0) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
  return typeof h.value === 'string' ? h.value : '';
}

function fromMap(method: string, target: string, headers: Readonly<Record<string, string>> | undefined, isStray: (n: string) => boolean): CheckInput {
  if (headers === undefined) {
    return { input: { method, target, authorization: undefined, authorizationCount: 0, dpop: undefined, dpopCount: 0, methodOverride: false }, stray: NONE };
  }
  // Names in any case, as HTTP has them (Envoy sends lower case; a hand-made client may not): an upper-case
  // X-HTTP-Method-Override was not seen, nor an upper-case Authorization (a black-box probe of SPEC §7).
  let authorization: string | undefined;
  let authorizationKeys = 0;
  let dpop: string | undefined;
  let dpopKeys = 0;
  let methodOverride = false;
  let stray: string[] | undefined;
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (typeof v !== 'string') continue;
    const lower = name.toLowerCase();
    if (lower === 'authorization') {
      authorization = v;
      authorizationKeys++;
    } else if (lower === 'dpop') {
      dpop = v;
      dpopKeys++;
    } else if (METHOD_OVERRIDE_HEADERS.has(lower)) methodOverride = true;
    if (isStray(lower)) (stray ??= []).push(lower);
  }
  return {
    input: {
      method,
      target,
      authorization,
      authorizationCount: credentialCount(authorizationKeys, authorization),
      dpop,
      dpopCount: credentialCount(dpopKeys, dpop),
      methodOverride,
    },
    stray: stray ?? NONE,
  };
}
