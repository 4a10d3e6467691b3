/**
 * The seam between the transports and optional tracing (src/observability/tracing.ts). Types only:
 * a transport imports this file, never the OpenTelemetry packages, so with tracing off none of
 * them is loaded and the request path pays one `tracer !== undefined` check.
 */
import type { Decision } from '../core/decision.ts';
import type { Transport } from './metrics.ts';

/** Where the W3C trace context is read from: node's raw `[name, value, …]` headers, or gRPC Metadata. */
export type TraceCarrier = readonly string[] | { get(key: string): unknown[] };

export interface DecisionTracer {
  /**
   * Records one decision span that started `seconds` ago and ends now, as the child of the
   * carrier's `traceparent` (if valid), and returns the handle for the upstream exchange that
   * may follow. `status` is the HTTP status answered (the upstream's for a proxied allow: 0).
   */
  decision(transport: Transport, carrier: TraceCarrier, method: string, decision: Decision, seconds: number, status: number): TraceHandle;
  /** Exports what is queued (bounded by the exporter timeout) and stops. */
  shutdown(): Promise<void>;
}

export interface TraceHandle {
  /**
   * Starts the span of one upstream exchange (child of the decision span) and rewrites `headers`
   * (flat `[name, value, …]`, as sent upstream): the client's traceparent/tracestate are replaced
   * by this span's context.
   */
  upstream(headers: string[]): UpstreamSpan;
}

export interface UpstreamSpan {
  /** `status` the client got; `outcome` how the exchange ended (forward.ts ForwardEnd). */
  end(status: number, outcome: string): void;
}
