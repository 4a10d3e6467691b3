/**
 * node:http request → DecisionInput. Reads rawHeaders, because node:http keeps only the first of
 * several Authorization headers in `req.headers` and several must be refused (SPEC §3).
 * One pass, no allocation beyond the result: Host and X-Forwarded-Proto/-Host (for the DPoP `htu`
 * check) are kept as references to the raw strings and only read for DPoP-bound tokens.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { authorityRefusal } from '../core/authority.ts';
import type { ClientCert } from '../core/cert-binding.ts';
import type { DecisionInput } from '../core/decision.ts';
import { clientCertOf } from './tls/client-cert.ts';

/** Lower-case method-override header names (SPEC §2). */
export const METHOD_OVERRIDE_HEADERS: ReadonlySet<string> = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);

/**
 * How many credentials `lines` header lines named Authorization (or DPoP) hold, the last one's value
 * being `value`: one line holding a comma holds two — folded lines (RFC 9110 §5.3), as Envoy merges
 * repeated headers; a compact JWS never contains one. Every transport counts this way, so one request
 * gets one answer (400 multiple_authorization) on all of them (SPEC §7).
 */
export function credentialCount(lines: number, value: string | undefined): number {
  return lines === 1 && value!.includes(',') ? 2 : lines;
}

function eqIgnoreCase(a: string, lower: string): boolean {
  return a.length === lower.length && (a === lower || a.toLowerCase() === lower);
}

/**
 * `method` and `target` default to the request's own; forward-auth and ext_authz pass the original ones.
 * `peer` (socket.remoteAddress) and `scheme` feed the DPoP origin (src/core/htu.ts).
 */
export function inputFromRawHeaders(rawHeaders: readonly string[], method: string, target: string, peer?: string, scheme?: string, clientCert?: ClientCert, certRequired = false): DecisionInput {
  let authorization: string | undefined;
  let host: string | undefined;
  let hostCount = 0;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let authorizationCount = 0;
  let dpop: string | undefined;
  let dpopCount = 0;
  let methodOverride = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    switch (name.length) {
      case 13: // authorization, x-http-method
        if (eqIgnoreCase(name, 'authorization')) {
          authorizationCount++;
          authorization = rawHeaders[i + 1];
        } else if (eqIgnoreCase(name, 'x-http-method')) methodOverride = true;
        break;
      case 4: // dpop, host
        if (eqIgnoreCase(name, 'dpop')) {
          dpopCount++;
          dpop = rawHeaders[i + 1];
        } else if (eqIgnoreCase(name, 'host')) {
          hostCount++;
          host = rawHeaders[i + 1];
        }
        break;
      case 16:
        if (eqIgnoreCase(name, 'x-forwarded-host')) forwardedHost = rawHeaders[i + 1];
        break;
      case 17: // x-method-override, x-forwarded-proto
        if (eqIgnoreCase(name, 'x-forwarded-proto')) forwardedProto = rawHeaders[i + 1];
        else if (eqIgnoreCase(name, 'x-method-override')) methodOverride = true;
        break;
      case 22: // x-http-method-override
        if (METHOD_OVERRIDE_HEADERS.has(name.toLowerCase())) methodOverride = true;
        break;
    }
  }
  authorizationCount = credentialCount(authorizationCount, authorization);
  dpopCount = credentialCount(dpopCount, dpop);
  // Exactly one valid authority (RFC 9112 §3.2), else 400 before any other work (src/core/authority.ts).
  const refusal = authorityRefusal(host, hostCount);
  // Two Host headers: which one the client meant is unknown, so the DPoP origin is too (fails closed).
  if (hostCount > 1) host = undefined;
  return { method, target, authorization, authorizationCount, dpop, dpopCount, methodOverride, host, scheme, forwardedProto, forwardedHost, peer, refusal, clientCert, certRequired };
}

/** `certRequired`: the request came in on a TLS listener with `require_client_cert: true`. */
export function inputFromRequest(req: IncomingMessage, certRequired = false): DecisionInput {
  const scheme = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http';
  // The verified client certificate of this connection (SPEC §11), read once per TLS socket.
  return inputFromRawHeaders(req.rawHeaders, req.method ?? '', req.url ?? '', req.socket.remoteAddress, scheme, clientCertOf(req.socket), certRequired);
}
