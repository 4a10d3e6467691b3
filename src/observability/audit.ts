/**
 * One JSON line per decision (SPEC §8): time, allow/deny, reason, status, method, normalized path
 * (no query), sub, jti, iss, txn, act, the matching grant entry and latency. Built from the
 * Decision alone — the token and the Authorization header never reach this module.
 */
import type { Logger } from 'pino';
import type { Decision } from '../core/decision.ts';
import { REDACT, REDACT_CENSOR } from './logger.ts';
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
    this.#log = logger?.child({ type: 'audit' }, { redact: { paths: auditRedactPaths(REDACT), censor: REDACT_CENSOR } });
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

/**
 * The logger's redaction paths for the audit line's fixed shape. A wildcard path (`*.token`) makes
 * pino run its redactor over every value of every line, which was most of an audit line's cost
 * (bench/README.md). Here `act` is the only field that can hold an object, so `*.x` censors
 * exactly what `act.x` censors; every other path is kept as it is.
 */
export function auditRedactPaths(paths: readonly string[]): string[] {
  return paths.map((p) => (p.startsWith('*.') ? `act.${p.slice(2)}` : p));
}
