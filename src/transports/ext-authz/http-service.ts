/**
 * The HTTP listener of ext_authz (SPEC §7): Envoy's HTTP authorization service on every path
 * under `ext_authz.http.path_prefix`, and forward-auth at exactly `ext_authz.forward_auth.path`.
 *
 * Envoy's HTTP service: the check request keeps the client's method, its path is
 * `path_prefix + original path-and-query`, and its headers are the client's (Envoy adds
 * content-length: 0 and its x-forwarded-*; those are ignored here — only forward-auth reads
 * forwarded headers, and only from trusted proxies). Allow is exactly 200 with the identity
 * headers and `x-envoy-auth-headers-to-remove`; a deny is the SPEC §3 answer except that the
 * 503 cases answer 403, because Envoy counts any 5xx as a service error (fail-open under
 * failure_mode_allow). Nothing on this listener answers 5xx, internal errors included.
 */
import { PendingDecisions } from '../pending-decisions.ts';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { deny, type Allow, type Decision } from '../../core/decision.ts';
import type { Listener, TransportContext } from '../context.ts';
import { inputFromRawHeaders } from '../http-input.ts';
import { refuseEarly } from '../early-refusal.ts';
import { capConnections, clientServerOptions, listenHttp, type HttpListener } from '../http-listener.ts';
import { renderDecision, renderWithoutServerError, type Rendered } from '../respond.ts';
import { forwardedInput } from './forward-auth.ts';
import { decideSafely, observe } from './judge.ts';
import type { TrustedProxies } from './trusted-proxies.ts';
import type { UpstreamHeaders } from './upstream-headers.ts';
import { pushPeerHeaders } from '../tls/peer-headers.ts';
import { trustedProxyCert } from '../tls/xfcc.ts';
import type { ClientCert } from '../../core/cert-binding.ts';

export interface HttpServiceOptions {
  readonly host: string;
  readonly port: number;
  readonly pathPrefix: string;
  readonly upstream: UpstreamHeaders;
  /** Present when forward-auth is configured. */
  readonly forwardAuth: { readonly path: string; readonly trusted: TrustedProxies } | undefined;
  /** Callers whose x-forwarded-client-cert / x-forwarded-tls-client-cert is believed (SPEC §11); default: none. */
  readonly xfccTrusted?: TrustedProxies;
}

const NONE: readonly string[] = Object.freeze([]);

export async function startHttpService(ctx: TransportContext, opts: HttpServiceOptions): Promise<Listener> {
  const { pathPrefix, upstream, forwardAuth } = opts;
  const xfccTrusted = opts.xfccTrusted ?? { has: () => false };

  const strayIn = (raw: readonly string[]): readonly string[] => {
    let out: string[] | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (upstream.isStray(name)) (out ??= []).push(name);
    }
    return out ?? NONE;
  };

  const answerDeny = (res: ServerResponse, r: Rendered): void => {
    res.writeHead(r.status, r.headers);
    res.end(r.bodyBytes);
  };

  const answerAllow = (res: ServerResponse, d: Allow, removal: string | undefined): void => {
    const h: string[] = [];
    if (d.token !== null) for (const [k, v] of d.token.identity) h.push(k, v);
    pushPeerHeaders(h, upstream.peer, d.clientCert);
    if (removal !== undefined) h.push('x-envoy-auth-headers-to-remove', removal);
    h.push('cache-control', 'no-store', 'content-length', '0');
    res.writeHead(200, h);
    res.end();
  };

  // Both answer in the request's own tick when the decision is synchronous (a cached token, a
  // refusal before crypto); only a verification in flight makes them return a promise.
  const extAuthz = (req: IncomingMessage, res: ServerResponse, startNs: bigint): void | Promise<void> => {
    const raw = req.url ?? '';
    const method = req.method ?? '';
    let decision: Decision | Promise<Decision>;
    let cert: ClientCert | 'malformed' | undefined;
    if (!raw.startsWith(pathPrefix) || raw.charCodeAt(pathPrefix.length) !== 0x2f /* / */) {
      decision = deny('bad_request_target'); // not a path Envoy's http_service would send
    } else {
      // The peer is Envoy: its X-Forwarded-Proto counts for the DPoP origin when it is in dpop.trusted_proxies.
      // The client certificate the proxy verified (Envoy's XFCC), believed only from a trusted caller (SPEC §11).
      cert = trustedProxyCert(req.rawHeaders, req.socket.remoteAddress, xfccTrusted, false);
      const input = inputFromRawHeaders(req.rawHeaders, method, raw.slice(pathPrefix.length), req.socket.remoteAddress, undefined, cert === 'malformed' ? undefined : cert);
      // Envoy's merged headers (a comma means several) are counted by inputFromRawHeaders, as on every transport.
      decision = decideSafely(ctx, 'ext_authz_http', { ...input, clientCertMalformed: cert === 'malformed' });
    }
    const answer = (d: Decision): void => {
      let status = 200;
      if (d.kind === 'allow') answerAllow(res, d, upstream.removalHeader(d, strayIn(req.rawHeaders)));
      else {
        const r = renderDecision(d, ctx.gate.policy, true);
        status = r.status;
        answerDeny(res, r);
      }
      observe(ctx, 'ext_authz_http', method, d, status, startNs, req.socket.remoteAddress, req.rawHeaders, cert === 'malformed' ? undefined : cert);
    };
    return decision instanceof Promise ? pending.after('ext_authz_http', decision, method, req.socket.remoteAddress, answer) : answer(decision);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, startNs: bigint, trusted: TrustedProxies): void | Promise<void> => {
    let method = req.method ?? '';
    let decision: Decision | Promise<Decision>;
    let cert: ClientCert | 'malformed' | undefined;
    if (!trusted.has(req.socket.remoteAddress)) decision = deny('untrusted_forwarded');
    else {
      // The proxy is trusted (above); its XFCC or X-Forwarded-Tls-Client-Cert names the client certificate it verified (SPEC §11).
      cert = trustedProxyCert(req.rawHeaders, req.socket.remoteAddress, xfccTrusted);
      const f = forwardedInput(req.rawHeaders, req.socket.remoteAddress, upstream.prefix, cert === 'malformed' ? undefined : cert);
      if (!f.ok) decision = deny(f.reason);
      else {
        method = f.input.method;
        // A malformed certificate is refused by the decision, after the target, so the audit line names the path.
        decision = decideSafely(ctx, 'forward_auth', cert === 'malformed' ? { ...f.input, clientCertMalformed: true } : f.input);
      }
    }
    const answer = (d: Decision): void => {
      let status = 200;
      if (d.kind === 'allow') answerAllow(res, d, undefined);
      else {
        const r = renderDecision(d, ctx.gate.policy);
        status = r.status;
        answerDeny(res, r);
      }
      observe(ctx, 'forward_auth', method, d, status, startNs, req.socket.remoteAddress, req.rawHeaders, cert === 'malformed' ? undefined : cert);
    };
    return decision instanceof Promise ? pending.after('forward_auth', decision, method, req.socket.remoteAddress, answer) : answer(decision);
  };

  const pending = new PendingDecisions(ctx);
  let listener: HttpListener | undefined;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startNs = process.hrtime.bigint();
    if (listener?.draining === true) res.shouldKeepAlive = false;
    req.resume(); // Envoy may send the body (with_request_body): drained, never read
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const pathname = q === -1 ? url : url.slice(0, q);
    const failed = (err: unknown): void => {
      ctx.logger.error({ err }, 'ext_authz HTTP request failed; refusing (internal_error)');
      if (!res.headersSent) answerDeny(res, renderWithoutServerError('internal_error'));
      else res.destroy();
    };
    try {
      const work = forwardAuth !== undefined && pathname === forwardAuth.path ? forward(req, res, startNs, forwardAuth.trusted) : extAuthz(req, res, startNs);
      if (work instanceof Promise) work.catch(failed);
    } catch (err) {
      failed(err);
    }
  };
  const server = createServer(clientServerOptions(ctx.config.limits), handle);
  // An Expect other than 100-continue is ignored, as nginx and the proxy do: judged like any request,
  // not node:http's bare 417 (no reason, no audit line).
  server.on('checkExpectation', handle);
  // Envoy keeps connections to its authorization cluster open: each request is judged on its own.
  server.maxRequestsPerSocket = 0;
  capConnections(server, ctx.config.limits.max_connections, ctx.metrics);
  // Refused by node:http before the handler: counted always, audited when a request line arrived.
  refuseEarly(server, ctx, 'ext_authz_http');

  const inner = await listenHttp(server, 'ext_authz_http', opts.host, opts.port);
  listener = {
    name: inner.name,
    host: inner.host,
    port: inner.port,
    get draining() {
      return inner.draining;
    },
    // Checks still waiting on a decision when the grace ends are audited as cut (pending-decisions.ts).
    close: (graceMs: number, beforeCut?: () => void) =>
      pending.closing((atCut) =>
        inner.close(graceMs, () => {
          beforeCut?.();
          atCut();
        }),
      ),
  };
  return listener;
}
