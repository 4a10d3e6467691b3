/**
 * One traffic request: raw headers → the gate's decision → forward (allow) or the precomputed
 * SPEC §3 answer (deny, unavailable). The decision is the same call every transport makes
 * (Oathkeeper's shared HandleRequest); this file is only glue, metrics and the audit line.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { unavailable, type Decision } from '../../core/decision.ts';
import type { TransportContext } from '../context.ts';
import { inputFromRequest } from '../http-input.ts';
import { renderDecision } from '../respond.ts';
import type { ForwardEnd, Forwarder } from './forward.ts';

export type ProxyHandler = (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => void;

export function createProxyHandler(ctx: TransportContext, forwarder: Forwarder): ProxyHandler {
  const { gate, metrics, audit } = ctx;
  const log = ctx.logger.child({ component: 'proxy' });

  async function handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
    const started = performance.now();
    let decision: Decision;
    try {
      decision = await gate.decide(inputFromRequest(req));
    } catch (err) {
      // A bug in deciding is never an allow: refuse with the named reason (503 internal_error).
      log.error({ err }, 'decision failed; refusing the request');
      decision = unavailable('internal_error');
    }
    const seconds = (performance.now() - started) / 1000;
    metrics.recordDecision('proxy', decision, seconds);
    // latency_ms in the audit line is the gate's own decision time, comparable across transports;
    // upstream time is in jitgate_upstream_duration_seconds.
    const latencyMs = seconds * 1000;

    if (decision.kind === 'allow') {
      // The client held its body back for `Expect: 100-continue`; only an allowed request gets it.
      if (expectContinue) res.writeContinue();
      const allow = decision;
      const method = req.method!;
      forwarder.forward(req, res, allow, (status: number, end: ForwardEnd) => {
        const outcome = end === 'upstream_timeout' || end === 'upstream_unreachable' ? end : undefined;
        audit.record({ transport: 'proxy', method, decision: allow, status, latencyMs, outcome });
      });
      return;
    }

    // Exact for this gate's policy: DPoP challenges name its algs, a nonce refusal carries DPoP-Nonce.
    const r = renderDecision(decision, gate.policy);
    // An unread body of a refused request is not worth reading: answer, then close.
    if (!req.complete) res.shouldKeepAlive = false;
    res.writeHead(r.status, r.headers);
    res.end(r.bodyBytes);
    audit.record({ transport: 'proxy', method: req.method!, decision, status: r.status, latencyMs });
  }

  return (req, res, expectContinue) => {
    void handle(req, res, expectContinue);
  };
}
