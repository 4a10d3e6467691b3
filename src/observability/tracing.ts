/**
 * Optional OpenTelemetry tracing (config `tracing`): one span per decision and one per upstream
 * exchange, exported over OTLP/HTTP (JSON) by the official SDK and exporter.
 *
 * Loaded only when configured (runtime.ts imports this file lazily), so without `tracing` none of
 * the OpenTelemetry packages is loaded and the transports pay one `tracer !== undefined` check.
 *
 * - Context: W3C `traceparent`/`tracestate` from the request (node headers, or gRPC metadata for
 *   ext_authz gRPC, where Envoy puts its own trace context), extracted explicitly; no global
 *   context manager, no async-hooks, nothing registered globally.
 * - Sampling: ParentBased(TraceIdRatio(sample_ratio)), the SDK's default shape: a request whose
 *   traceparent says "sampled" is recorded whatever the ratio (docs/integrations.md says what
 *   that lets a client do and why it is bounded).
 * - Export: BatchSpanProcessor with a bounded queue (max_queue_size; spans beyond it are dropped),
 *   exporting on a timer, off the request path. A collector that is down or slow costs dropped
 *   spans and a rate-limited warning, never a request.
 * - Attributes: decision, reason, transport, issuer, grant entry index, method, canonical path and
 *   status. Never the token, the Authorization or DPoP header, the subject or the token id.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVICE_NAME, ATTR_URL_PATH } from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { auditIdsOf, type Decision } from '../core/decision.ts';
import { withDeadline } from '../deadline.ts';
import type { Transport } from './metrics.ts';
import { redactUrl } from './redact-url.ts';
import type { DecisionTracer, TraceCarrier, TraceHandle, UpstreamSpan } from './trace-hooks.ts';

export type TracingConfig = NonNullable<Config['tracing']>;

/** At most one "export failed" warning per this interval: a dead collector must not flood the log. */
const WARN_EVERY_MS = 60_000;

const rawHeaders: TextMapGetter<readonly string[]> = {
  keys: (c) => c.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()),
  get(c, key) {
    for (let i = 0; i < c.length; i += 2) if (c[i]!.length === key.length && c[i]!.toLowerCase() === key) return c[i + 1];
    return undefined;
  },
};

const grpcMetadata: TextMapGetter<{ get(key: string): unknown[] }> = {
  keys: () => [],
  get(c, key) {
    const v = c.get(key)[0];
    return typeof v === 'string' ? v : undefined;
  },
};

const flatHeaders: TextMapSetter<string[]> = {
  set: (c, key, value) => void c.push(key, value),
};

/** Removes traceparent/tracestate from a flat `[name, value, …]` list in place. */
function dropTraceHeaders(h: string[]): void {
  for (let i = h.length - 2; i >= 0; i -= 2) {
    const n = h[i]!.toLowerCase();
    if (n === 'traceparent' || n === 'tracestate') h.splice(i, 2);
  }
}

/** Delegates to the OTLP exporter and logs failures, at most once a minute. */
class LoggingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #log: Logger;
  #lastWarn = 0;
  #failed = 0;

  constructor(inner: SpanExporter, log: Logger) {
    this.#inner = inner;
    this.#log = log;
  }

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.#inner.export(spans, (r) => {
      if (r.code !== ExportResultCode.SUCCESS) {
        this.#failed += spans.length;
        const now = Date.now();
        if (now - this.#lastWarn >= WARN_EVERY_MS) {
          this.#lastWarn = now;
          this.#log.warn({ err: r.error?.message, spans_lost: this.#failed }, 'trace export failed; spans dropped (requests are unaffected)');
          this.#failed = 0;
        }
      }
      done(r);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

class Upstream implements UpstreamSpan {
  readonly #span: Span;

  constructor(span: Span) {
    this.#span = span;
  }

  end(status: number, outcome: string): void {
    const span = this.#span;
    if (span.isRecording()) {
      span.setAttribute('jitgate.upstream.outcome', outcome);
      if (status !== 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (outcome === 'upstream_unreachable' || outcome === 'upstream_tls' || outcome === 'upstream_timeout') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
    }
    span.end();
  }
}

class Handle implements TraceHandle {
  readonly #tracer: Tracer;
  readonly #propagator: W3CTraceContextPropagator;
  readonly #parent: Context;
  readonly #method: string;

  constructor(tracer: Tracer, propagator: W3CTraceContextPropagator, parent: Context, method: string) {
    this.#tracer = tracer;
    this.#propagator = propagator;
    this.#parent = parent;
    this.#method = method;
  }

  upstream(headers: string[]): UpstreamSpan {
    const span = this.#tracer.startSpan('jitgate.upstream', { kind: SpanKind.CLIENT }, this.#parent);
    if (span.isRecording()) span.setAttribute(ATTR_HTTP_REQUEST_METHOD, this.#method);
    // The backend continues this trace from the exchange span, not from whatever the client sent.
    dropTraceHeaders(headers);
    this.#propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, flatHeaders);
    return new Upstream(span);
  }
}

/** For a decision whose span could not be made: the upstream request goes on untraced (client trace headers dropped). */
const NOOP_HANDLE: TraceHandle = {
  upstream(headers) {
    dropTraceHeaders(headers);
    return { end() {} };
  },
};

export class Tracing implements DecisionTracer {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #propagator = new W3CTraceContextPropagator();
  readonly #log: Logger;
  readonly #exportTimeout: number;

  constructor(config: TracingConfig, logger: Logger) {
    this.#log = logger.child({ component: 'tracing' });
    this.#exportTimeout = config.export_timeout;
    const exporter = new OTLPTraceExporter({ url: config.otlp_endpoint, headers: { ...config.headers }, timeoutMillis: config.export_timeout });
    this.#provider = new TracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.service_name }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sample_ratio) }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter: new LoggingExporter(exporter, this.#log),
          maxQueueSize: config.max_queue_size,
          maxExportBatchSize: Math.min(512, config.max_queue_size),
          scheduledDelayMillis: config.export_interval,
          exportTimeoutMillis: config.export_timeout,
        }),
      ],
    });
    this.#tracer = this.#provider.getTracer('jitgate');
  }

  decision(transport: Transport, carrier: TraceCarrier, method: string, d: Decision, seconds: number, status: number): TraceHandle {
    try {
      const parent = Array.isArray(carrier)
        ? this.#propagator.extract(ROOT_CONTEXT, carrier as readonly string[], rawHeaders)
        : this.#propagator.extract(ROOT_CONTEXT, carrier as { get(key: string): unknown[] }, grpcMetadata);
      const endMs = performance.timeOrigin + performance.now();
      const span = this.#tracer.startSpan('jitgate.decision', { kind: SpanKind.SERVER, startTime: endMs - seconds * 1000 }, parent);
      if (span.isRecording()) {
        span.setAttribute('jitgate.transport', transport);
        span.setAttribute('jitgate.decision', d.kind);
        span.setAttribute('jitgate.reason', d.reason);
        span.setAttribute(ATTR_HTTP_REQUEST_METHOD, method);
        if (d.path !== null) span.setAttribute(ATTR_URL_PATH, d.path);
        if (status !== 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
        const token = auditIdsOf(d);
        if (token !== null) span.setAttribute('jitgate.issuer', token.iss);
        if (d.kind === 'allow' && d.grantIndex >= 0) span.setAttribute('jitgate.grant_entry', d.grantIndex);
        if (d.kind === 'unavailable') span.setStatus({ code: SpanStatusCode.ERROR, message: d.reason });
      }
      span.end(endMs);
      return new Handle(this.#tracer, this.#propagator, trace.setSpan(parent, span), method);
    } catch (err) {
      // Tracing never changes an answer.
      this.#log.error({ err }, 'recording a decision span failed');
      return NOOP_HANDLE;
    }
  }

  /**
   * Flushes what is queued, for at most export_timeout. The exporter's own timeout did not bound it: a collector
   * whose SYNs go unanswered held the flush, and so the drain, until the kernel gave up connecting (121–135 s).
   */
  async shutdown(): Promise<void> {
    try {
      await withDeadline(this.#provider.shutdown(), this.#exportTimeout, () => new FlushTimeout());
    } catch (err) {
      if (err instanceof FlushTimeout) this.#log.warn({ export_timeout_ms: this.#exportTimeout }, 'flushing traces at shutdown took longer than tracing.export_timeout; the spans still queued are dropped');
      else this.#log.warn({ err: (err as Error).message }, 'flushing traces at shutdown failed');
    }
  }
}

class FlushTimeout extends Error {}

export function startTracing(config: TracingConfig, logger: Logger): DecisionTracer {
  const t = new Tracing(config, logger);
  logger.info({ otlp_endpoint: redactUrl(config.otlp_endpoint, true), sample_ratio: config.sample_ratio, service_name: config.service_name }, 'tracing on');
  return t;
}
