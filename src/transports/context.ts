/**
 * What every transport is handed: the one Gate plus observability. Transports are thin: they turn
 * their wire format into a DecisionInput, ask the gate, record, and render.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Gate } from '../gate.ts';
import type { AuditLog } from '../observability/audit.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { DecisionTracer } from '../observability/trace-hooks.ts';

export interface TransportContext {
  readonly config: Config;
  readonly gate: Gate;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  readonly logger: Logger;
  /** Present only when `tracing` is configured; transports check it once per decision. */
  readonly tracer?: DecisionTracer;
}

/** A started listener. `close` stops accepting, lets in-flight work finish within graceMs, then ends. */
export interface Listener {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  close(graceMs: number): Promise<void>;
}
