/**
 * Requests whose decision is still being made when a listener's shutdown grace ends: a signature
 * check on the thread pool, a status list's first fetch, a DPoP replay check in Redis. Their
 * connections are cut with the rest, and the process may be gone before the decision comes: without
 * this they left no audit line at all (a review: a status list that never answered, 10 s timeout, 5 s
 * grace). At the cut each gets the line every other cut request gets — 444 `shutdown_cut` — and the
 * decision, if it still comes, is dropped. Only waiting decisions are held here; the synchronous
 * path (a cached token) never touches it.
 */
import { unavailable } from '../core/decision.ts';
import type { Transport } from '../observability/metrics.ts';
import type { TransportContext } from './context.ts';

export interface Pending {
  readonly transport: Transport;
  readonly method: string;
  readonly client: string | undefined;
  readonly since: number;
}

export class PendingDecisions {
  readonly #open = new Set<Pending>();
  readonly #ctx: TransportContext;

  constructor(ctx: TransportContext) {
    this.#ctx = ctx;
  }

  /** A decision is awaited for this request; `since` (performance.now()) when the caller has it already. */
  hold(transport: Transport, method: string, client: string | undefined, since = performance.now()): Pending {
    const p: Pending = { transport, method, client, since };
    this.#open.add(p);
    return p;
  }

  /** The decision came: true to go on with it, false when the request was cut (and audited) meanwhile. */
  release(p: Pending): boolean {
    return this.#open.delete(p);
  }

  /** `decision.then(go)`, held meanwhile: `go` runs only if the request was not cut; a rejection passes through. */
  after<T>(transport: Transport, decision: Promise<T>, method: string, client: string | undefined, go: (d: T) => void): Promise<void> {
    const p = this.hold(transport, method, client);
    return decision.then(
      (d) => {
        if (this.release(p)) go(d);
      },
      (err: unknown) => {
        this.release(p);
        throw err;
      },
    );
  }

  /**
   * A listener's graceful close, with every request still waiting accounted for: `close` gets the
   * hook its listener calls when the grace ends with connections open (those requests: 444
   * `shutdown_cut`, cut by the gate); whatever still waits once it has closed is a request whose client
   * left (499 `client_closed`: a client still there keeps its connection open, so the close would have
   * waited for it). Every transport closes through this.
   */
  async closing(close: (atCut: () => void) => Promise<void>): Promise<void> {
    await close(() => this.#cut(444, 'shutdown_cut'));
    this.#cut(499, 'client_closed');
  }

  /** Every request still waiting is audited with this status and outcome; its decision will be dropped. */
  #cut(status: 444 | 499, outcome: 'shutdown_cut' | 'client_closed'): void {
    const now = performance.now();
    for (const p of this.#open) {
      try {
        // The reason is the outcome's; the decision part says only that nothing was let through.
        this.#ctx.audit.record({ transport: p.transport, method: p.method, decision: unavailable('internal_error'), status, latencyMs: now - p.since, outcome, client: p.client });
      } catch (err) {
        this.#ctx.logger.error({ err }, 'auditing a request cut at shutdown failed');
      }
    }
    this.#open.clear();
  }
}
