/**
 * Anomaly response (SPEC §12): a token that keeps getting refused for requests outside its grant
 * (403) or for malformed requests (400) is probing; once it has `deny_threshold` such refusals
 * within `window`, the gate revokes its task (`txn`, or the token itself without one), the token
 * (`jti`) or its subject (`sub`) through the revocation store — the same write path as
 * `POST /revocations`, so the entry is durable (journal) or fleet-wide (Redis) before it counts.
 *
 * Costs nothing on an allow: the gate hands every decision to `observe`, which returns at the
 * first comparison unless the decision is a 400 or 403. A 400 is judged on the request alone,
 * before any token work (src/core/decide.ts); its token is identified here, after the answer is
 * decided, from the cache or by a signature check — never to change the answer.
 *
 * A bound token's 400s are not counted (DPoP or certificate binding, or an issuer or service that
 * requires one), nor those of a token with a status-list reference: at 400 the caller has not shown
 * it holds the key or certificate, nor has the status been looked up, and counting them would let a
 * thief who holds only the token get the task revoked (Decider.identify, countableAt400). Their 403s
 * count: a 403 comes after the proof, the certificate and the status (decide.ts checks those first).
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';
import type { Decision, DecisionInput, Deny } from '../core/decision.ts';
import { REASONS } from '../core/reasons.ts';
import type { VerifiedToken } from '../core/verified-token.ts';
import type { Config } from '../config/schema.ts';
import type { Gate, RefusalObserver } from '../gate.ts';
import type { AuditLog } from '../observability/audit.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { RevocationEntry } from '../revocation/entries.ts';
import { RefusalCounter, type Counted, type RefusalCounting } from './refusal-counter.ts';

export type AnomalyConfig = NonNullable<Config['anomaly']>;

/** Where revocations go: the admin API's RevocationStore (src/admin/revocations-api.ts) or the primary's over IPC. */
export interface RevocationWriter {
  append(entries: readonly RevocationEntry[]): Promise<unknown>;
}

export interface AnomalyDeps {
  readonly gate: Gate;
  readonly store: RevocationWriter;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Counts elsewhere: at the cluster primary (primary-counter.ts) or in Redis for the fleet (src/fleet/redis-refusal-counter.ts), so a token probing through every worker or gate is counted once. */
  readonly counter?: RefusalCounting;
}

export class AnomalyWatch implements RefusalObserver {
  readonly #cfg: AnomalyConfig;
  readonly #d: AnomalyDeps;
  readonly #counter: RefusalCounting;
  readonly #log: Logger;

  constructor(cfg: AnomalyConfig, deps: AnomalyDeps) {
    this.#cfg = cfg;
    this.#d = deps;
    this.#counter = deps.counter ?? new RefusalCounter(cfg.deny_threshold, cfg.window, cfg.max_tracked);
    this.#log = deps.logger.child({ component: 'anomaly' });
  }

  observe(input: DecisionInput, decision: Decision): void {
    if (decision.kind !== 'deny') return;
    // Counting must never change an answer: a throw here would turn the refusal into internal_error.
    try {
      this.#observeDeny(input, decision);
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'counting a refusal failed; not counted');
    }
  }

  #observeDeny(input: DecisionInput, decision: Deny): void {
    const status = REASONS[decision.reason].status;
    if (status === 403) {
      if (decision.token !== null) this.#count(decision.token, decision, 403, input.peer);
      return;
    }
    if (status !== 400 || input.authorization === undefined) return;
    const t = this.#d.gate.identify(input.authorization);
    if (t instanceof Promise) {
      // catch after then: a throw while counting must not become an unhandled rejection either.
      t.then((v) => v !== undefined && this.#count400(v, decision, input.peer)).catch((err: unknown) =>
        this.#log.error({ err: (err as Error).message }, 'identifying or counting the token of a refused request failed; not counted'),
      );
    } else if (t !== undefined) this.#count400(t, decision, input.peer);
  }

  #count400(t: VerifiedToken, decision: Deny, client: string | undefined): void {
    if (t.cnfJkt !== undefined) return; // possession not shown at 400 (see the module comment)
    this.#count(t, decision, 400, client);
  }

  #count(t: VerifiedToken, decision: Deny, status: 400 | 403, client: string | undefined): void {
    this.#d.metrics.anomalyRefusals.labels(String(status)).inc();
    const key = `${t.iss}\n${t.jti}`;
    const counted = this.#counter.add(key, this.#d.clock.nowMs());
    if (!(counted instanceof Promise)) return this.#counted(t, key, decision, counted, client);
    counted.then((c) => this.#counted(t, key, decision, c, client)).catch((err: unknown) =>
      this.#log.error({ err: (err as Error).message }, 'counting a refusal at the cluster primary or in Redis failed; not counted'),
    );
  }

  #counted(t: VerifiedToken, key: string, decision: Deny, { inWindow, crossed }: Counted, client: string | undefined): void {
    if (crossed) this.#revoke(t, key, decision, inWindow, client);
  }

  #revoke(t: VerifiedToken, key: string, decision: Deny, refusals: number, client: string | undefined): void {
    const entry = this.#entryFor(t);
    const revoke = entry.kind;
    const ids = { sub: t.sub, jti: t.jti, iss: t.iss, txn: t.txn };
    const audit = (outcome: 'ok' | 'unknown', error?: string): void =>
      this.#d.audit.recordEvent({
        decision: 'anomaly_revoked',
        outcome,
        ...(error === undefined ? {} : { error }),
        reason: decision.reason,
        path: decision.path, // null when the target did not parse, as on the decision line
        client,
        ...ids,
        revoke,
        revoked: entryJson(entry),
        refusals,
        window_ms: this.#cfg.window,
      });
    this.#d.store.append([entry]).then(
      () => {
        this.#d.metrics.anomalyRevocations.labels(revoke, 'ok').inc();
        audit('ok');
        this.#log.warn({ ...ids, revoke, refusals, window_ms: this.#cfg.window }, 'token crossed anomaly.deny_threshold; revoked');
      },
      (err: unknown) => {
        this.#counter.rearm(key);
        this.#d.metrics.anomalyRevocations.labels(revoke, 'error').inc();
        // Not "failed": a write that timed out may already be in Redis's socket buffer and be
        // executed when Redis resumes (it cannot be recalled), so the trail records the attempt.
        audit('unknown', (err as Error).message);
        this.#log.error({ ...ids, revoke, refusals, err: (err as Error).message }, 'anomaly revocation not acknowledged (it may still take effect); the next refusal tries again');
      },
    ).catch((err: unknown) => this.#log.error({ ...ids, err: (err as Error).message }, 'recording an anomaly revocation failed'));
  }

  /**
   * The entry `revoke` asks for, with an `exp` so it is pruned once it can no longer matter: the
   * token's own exp for `jti`; for `txn` and `sub`, when every token that exists now has expired
   * (issued at most now plus the issuer's clock tolerance — a gate accepts an `iat` that far ahead —
   * and living at most its max_ttl). A task's token minted after that is no longer covered: the broker
   * is expected to stop issuing for a revoked task. `sub` revokes every token issued up to then too,
   * the one that crossed the threshold included however far ahead its `iat` is.
   */
  #entryFor(t: VerifiedToken): RevocationEntry {
    const nowSec = Math.floor(this.#d.clock.nowMs() / 1000);
    const issuer = this.#d.gate.policy.issuers.get(t.iss);
    const maxTtl = issuer?.maxTtlSec ?? t.exp - t.iat;
    const newest = Math.max(t.iat, nowSec + (issuer?.toleranceSec ?? 0)) + 1;
    const mode = this.#cfg.revoke;
    if (mode === 'sub') return { kind: 'sub', sub: t.sub, before: newest, exp: newest + maxTtl };
    if (mode === 'txn' && t.txn !== undefined) return { kind: 'txn', txn: t.txn, exp: newest + maxTtl };
    return { kind: 'jti', jti: t.jti, exp: t.exp };
  }
}

/** The entry as its JSON Lines form (SPEC §5), for the audit line. */
function entryJson(e: RevocationEntry): Record<string, unknown> {
  if (e.kind === 'sub') return { sub: e.sub, before: e.before, exp: e.exp };
  return e.kind === 'txn' ? { txn: e.txn, exp: e.exp } : { jti: e.jti, exp: e.exp };
}
