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
import type { RevocationEntry } from '../revocation/entries.ts';

/** Where revocations go: the RevocationStore of src/admin/revocations-api.ts, seen from a transport. */
export interface RevocationAppender {
  /** Durable (journal fsynced and/or Redis acknowledged), then enforced; resolves with an entry count. */
  append(entries: readonly RevocationEntry[]): Promise<number>;
  status(): object | Promise<object>;
  readonly journalFile: string | undefined;
  readonly redis?: string;
}

export interface TransportContext {
  readonly config: Config;
  readonly gate: Gate;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  readonly logger: Logger;
  /** Present only when `tracing` is configured; transports check it once per decision. */
  readonly tracer?: DecisionTracer;
  /**
   * Where revocations are appended (the admin API, and any code that revokes, e.g. anomaly
   * response): chosen once by chooseRevocationStore (src/admin/revocation-store.ts). `append`
   * resolves only once the entries are durable (journal and/or Redis acknowledged).
   */
  readonly revocations?: RevocationAppender;
}

/** A started listener. `close` stops accepting, lets in-flight work finish within graceMs, then ends. */
export interface Listener {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  close(graceMs: number): Promise<void>;
}
