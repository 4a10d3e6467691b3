/**
 * The one path every ext_authz transport takes through the gate: decide (a throw becomes the
 * `internal_error` refusal, never an RPC error or a 5xx that Envoy's failure_mode_allow would
 * turn into an allow — SPEC §7), then one metrics sample and one audit line, the same fields the
 * proxy writes for the same request (SPEC §7, §8).
 */
import type { ClientCert } from '../../core/cert-binding.ts';
import type { Decision, DecisionInput } from '../../core/decision.ts';
import { unavailable } from '../../core/decision.ts';
import type { Transport } from '../../observability/metrics.ts';
import type { TraceCarrier } from '../../observability/trace-hooks.ts';
import type { TransportContext } from '../context.ts';

const NO_CARRIER: readonly string[] = [];

export type ExtAuthzTransport = Extract<Transport, 'ext_authz_http' | 'ext_authz_grpc' | 'forward_auth'>;

/**
 * Asks the gate; never throws and never rejects. Synchronous whenever the gate is (a cached token,
 * a refusal before any crypto), so the common check costs no promise, like the proxy's.
 */
export function decideSafely(ctx: TransportContext, transport: ExtAuthzTransport, input: DecisionInput): Decision | Promise<Decision> {
  const failed = (err: unknown): Decision => {
    ctx.logger.error({ err, transport }, 'decision failed; refusing the request (internal_error)');
    return unavailable('internal_error');
  };
  try {
    const d = ctx.gate.decide(input);
    return d instanceof Promise ? d.catch(failed) : d;
  } catch (err) {
    return failed(err);
  }
}

/**
 * Records one decision: a metrics sample, one audit line and, with tracing on, a span whose parent
 * is the trace context in `carrier` (the check request's headers or gRPC metadata).
 * `startNs` from process.hrtime.bigint().
 */
export function observe(
  ctx: TransportContext,
  transport: ExtAuthzTransport,
  method: string,
  decision: Decision,
  status: number,
  startNs: bigint,
  client?: string,
  carrier?: TraceCarrier,
  clientCert?: ClientCert,
): void {
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  try {
    ctx.metrics.recordDecision(transport, decision, seconds);
    // An allow names the certificate it relied on (none outside its validity window: core/cert-binding.ts);
    // a refusal names the one presented, as evidence.
    ctx.audit.record({ transport, method, decision, status, latencyMs: seconds * 1000, client, clientCert: decision.kind === 'allow' ? decision.clientCert : clientCert });
    if (ctx.tracer !== undefined) ctx.tracer.decision(transport, carrier ?? NO_CARRIER, method, decision, seconds, status);
  } catch (err) {
    // Observability must never change the answer already sent.
    ctx.logger.error({ err, transport }, 'recording a decision failed');
  }
}
