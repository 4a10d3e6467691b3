/**
 * One JSON line per decision (SPEC §8): time, allow/deny, reason, status, method, normalized path
 * (no query), sub, jti, iss, txn, act, the matching grant entry and latency. Built from the
 * Decision alone — the token and the Authorization header never reach this module.
 */
import type { Logger } from 'pino';
import type { Decision } from '../core/decision.ts';
import type { Transport } from './metrics.ts';

export interface AuditRecord {
  readonly transport: Transport;
  readonly method: string;
  readonly decision: Decision;
  /** The status jitgate answered or the upstream returned. */
  readonly status: number;
  readonly latencyMs: number;
  /** A proxy-only outcome that overrides the decision's reason (upstream_unreachable, upstream_timeout). */
  readonly outcome?: string;
}

export class AuditLog {
  readonly #log: Logger | undefined;

  /** `logger` undefined disables audit lines (log.audit: false). */
  constructor(logger: Logger | undefined) {
    this.#log = logger?.child({ type: 'audit' });
  }

  get enabled(): boolean {
    return this.#log !== undefined;
  }

  record(r: AuditRecord): void {
    const log = this.#log;
    if (log === undefined) return;
    const d = r.decision;
    const t = d.kind === 'unavailable' ? null : d.token;
    log.info({
      transport: r.transport,
      decision: d.kind === 'allow' ? 'allow' : 'deny',
      reason: r.outcome ?? d.reason,
      status: r.status,
      method: r.method,
      path: d.path,
      sub: t?.sub,
      jti: t?.jti,
      iss: t?.iss,
      txn: t?.txn,
      act: t?.act,
      grant: d.kind === 'allow' && d.grantIndex >= 0 ? d.grantIndex : undefined,
      latency_ms: Math.round(r.latencyMs * 1000) / 1000,
    });
  }
}
