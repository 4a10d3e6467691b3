/**
 * One traffic request: raw headers → the gate's decision → forward (allow) or the precomputed
 * SPEC §3 answer (deny, unavailable). The decision is the same call every transport makes
 * (Oathkeeper's shared HandleRequest); this file is only glue, metrics and the audit line.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { deny, unavailable, type Decision } from '../../core/decision.ts';
import type { TransportContext } from '../context.ts';
import { inputFromRequest } from '../http-input.ts';
import { clientCertOf } from '../tls/client-cert.ts';
import { render, renderDecision, type Rendered } from '../respond.ts';
import type { ForwardEnd, Forwarder } from './forward.ts';
import { InflightByToken } from './inflight-tokens.ts';
import type { PendingDecisions } from '../pending-decisions.ts';

export type ProxyHandler = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => void;

/** What a token over limits.max_inflight_per_token is counted as (its audit line names the token too). */
const INFLIGHT_REFUSAL = deny('inflight_limit');

export function createProxyHandler(ctx: TransportContext, forwarder: Forwarder, pending: PendingDecisions): ProxyHandler {
  const { gate, metrics, audit, tracer } = ctx;
  const log = ctx.logger.child({ component: 'proxy' });
  const inflight = new InflightByToken(ctx.config.limits.max_inflight_per_token);
  const certRequired = ctx.config.listen.tls?.require_client_cert === true;

  /** A bug in deciding is never an allow: refuse with the named reason (503 internal_error). */
  function failed(err: unknown): Decision {
    tellError({ err }, 'decision failed; refusing the request');
    return unavailable('internal_error');
  }

  /** Said after a throw, which may have come from the log's own destination (audit lines share it): never throws. */
  function tellError(fields: object, msg: string): void {
    try {
      log.error(fields, msg);
    } catch {
      // The destination itself failed: nothing is left to tell it with.
    }
  }

  function act(req: IncomingMessage, res: ServerResponse, expectContinue: boolean, decision: Decision, started: number): void {
    const seconds = (performance.now() - started) / 1000;
    // latency_ms in the audit line is the gate's own decision time, comparable across transports;
    // upstream time is in jitgate_upstream_duration_seconds.
    const latencyMs = seconds * 1000;
    const client = req.socket.remoteAddress; // read now: a finished exchange may have lost its socket

    if (decision.kind === 'allow') {
      const allow = decision;
      const token = allow.token;
      // One grant may not hold every upstream connection (inflight-tokens.ts).
      if (token !== null && !inflight.enter(token.iss, token.jti)) {
        metrics.limitRefusals.labels('inflight_token').inc();
        // Counted as what the client got, once (a re-probe saw it counted as granted and inflight_limit both).
        metrics.recordDecision('proxy', INFLIGHT_REFUSAL, seconds);
        refuse(req, res, render('inflight_limit'));
        // A refusal naming its token, as the metric counts it (deny); the line used to say "allow" with the 429.
        audit.record({ transport: 'proxy', method: req.method!, decision: deny('inflight_limit', allow.path, token), status: 429, latencyMs, client, clientCert: allow.clientCert });
        // A span for every answered decision, as the audit line: this one is an allow the limit turned into a 429.
        if (tracer !== undefined) tracer.decision('proxy', req.rawHeaders, req.method!, allow, seconds, 429);
        return;
      }
      metrics.recordDecision('proxy', allow, seconds);
      const method = req.method!;
      // The slot is given back once: when the exchange ends, or here if a throw came before it took the request.
      let left = token === null;
      try {
        // The client held its body back for `Expect: 100-continue`; only an allowed request gets it.
        if (expectContinue) res.writeContinue();
        const trace = tracer === undefined ? undefined : tracer.decision('proxy', req.rawHeaders, method, allow, seconds, 0);
        forwarder.forward(
          req,
          res,
          allow,
          (status: number, end: ForwardEnd) => {
            if (!left) {
              left = true;
              inflight.leave(token!.iss, token!.jti);
            }
            // Every end but these two names what became of the answer (forward.ts ForwardEnd).
            const outcome = end === 'ok' || end === 'client_closed' ? undefined : end;
            try {
              audit.record({ transport: 'proxy', method, decision: allow, status, latencyMs, outcome, client, clientCert: allow.clientCert });
            } catch (err) {
              // Called from the upstream exchange's own callbacks, where a throw would end the process.
              tellError({ err }, 'auditing a forwarded request failed');
            }
          },
          trace,
        );
      } catch (err) {
        if (!left) {
          left = true;
          inflight.leave(token!.iss, token!.jti);
        }
        throw err;
      }
      return;
    }

    metrics.recordDecision('proxy', decision, seconds);
    // Exact for this gate's policy: DPoP challenges name its algs, a nonce refusal carries DPoP-Nonce.
    const r = renderDecision(decision, gate.policy);
    // The connection's certificate went out of its validity window: it will not get better on this
    // connection (nor, once the ticket lapses, on a resumed one). Closed, so the client handshakes again.
    if (decision.reason === 'client_cert_expired' || decision.reason === 'client_cert_not_yet_valid') res.shouldKeepAlive = false;
    refuse(req, res, r);
    audit.record({ transport: 'proxy', method: req.method!, decision, status: r.status, latencyMs, client, clientCert: clientCertOf(req.socket) });
    if (tracer !== undefined) tracer.decision('proxy', req.rawHeaders, req.method!, decision, seconds, r.status);
  }

  /** An unread body of a refused request is not worth reading: answer, then close. (A bodiless
   * request decided in the parser's own tick is not `complete` yet, and keeps its connection.) */
  function refuse(req: IncomingMessage, res: ServerResponse, r: Rendered): void {
    if (!req.complete && declaresBody(req.rawHeaders)) res.shouldKeepAlive = false;
    res.writeHead(r.status, r.headers);
    res.end(r.bodyBytes);
  }

  return (req, res, expectContinue) => {
    const started = performance.now();
    let decision: Decision | Promise<Decision>;
    try {
      decision = gate.decide(inputFromRequest(req, certRequired));
    } catch (err) {
      decision = failed(err);
    }
    // A cached token is decided synchronously: the request goes on in this same tick.
    if (!(decision instanceof Promise)) {
      actSafely(req, res, expectContinue, decision, started);
      return;
    }
    // A decision that waits (a miss, a status list, a DPoP replay check) is one a shutdown can cut.
    const held = pending.hold('proxy', req.method!, req.socket.remoteAddress, started);
    decision.then(
      (d) => {
        if (pending.release(held)) actSafely(req, res, expectContinue, d, started);
      },
      (err: unknown) => {
        if (pending.release(held)) actSafely(req, res, expectContinue, failed(err), started);
      },
    );
  };

  /**
   * A throw while answering (a bug, a log destination already closed at shutdown) costs this one
   * request, never the process: uncaught here it would be an uncaught exception (a cached token,
   * decided in the request's own tick) or an unhandled rejection (a decision that waited), and
   * either ends every other connection the gate holds. The ext_authz services guard the same way.
   */
  function actSafely(req: IncomingMessage, res: ServerResponse, expectContinue: boolean, decision: Decision, started: number): void {
    try {
      act(req, res, expectContinue, decision, started);
    } catch (err) {
      // Answered first: telling of it may throw too, when the log's destination is what failed.
      // An answer already out stays as it is (the throw came after it, e.g. from its audit line). An
      // allow may have its upstream exchange started, which would write to `res` later: only cut.
      if (!res.writableEnded) {
        try {
          if (decision.kind !== 'allow' && !res.headersSent) {
            res.shouldKeepAlive = false;
            refuse(req, res, render('internal_error'));
          } else res.destroy();
        } catch {
          res.destroy();
        }
      }
      tellError({ err, reason: decision.reason }, 'answering a request failed');
    }
  }
}

/** A body follows the head: Transfer-Encoding, or a Content-Length other than 0 (RFC 9112 §6.3). */
function declaresBody(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
    if (name.length === 14 && name.toLowerCase() === 'content-length' && raw[i + 1]!.trim() !== '0') return true;
  }
  return false;
}
