/**
 * One corpus row through every transport it applies to, with the same assertions everywhere:
 * exact status, exact reason (JSON body, or the audit line on an allow), `cache-control: no-store`
 * on jitgate's own answers, the right gRPC code, the upstream saw the request only when allowed,
 * and the attacker server saw nothing at all.
 */
import { expect, it } from 'vitest';
import type { RecordedRequest } from '../fixtures/servers.ts';
import type { AttackGate, AttackKeys, Header, Outcome, Seen, Transport } from './harness.ts';
import { expected, runCase, TRANSPORTS } from './harness.ts';

export interface RowContext {
  readonly keys: AttackKeys;
  readonly attackerUrl: string;
}

export interface Row {
  readonly name: string;
  /** Default GET. */
  readonly method?: string;
  /** Raw request target; default `/orders/42` (inside the default grant). */
  readonly target?: string | ((ctx: RowContext) => string);
  readonly headers?: (ctx: RowContext) => readonly Header[] | Promise<readonly Header[]>;
  /** A request body (proxy and HTTP service only; Content-Length is added). */
  readonly body?: (ctx: RowContext) => string;
  readonly expect: Outcome;
  /** Per-transport expectation where the wire differs, or `skip` when the row cannot be expressed there. */
  readonly on?: Partial<Record<Transport, Outcome | 'skip'>>;
  /** Extra assertions on an answer; `upstream` is what the recording upstream got (proxy allows only). */
  readonly verify?: (t: Transport, seen: Seen, upstream: RecordedRequest | undefined) => void;
}

export const ALLOW: ReadonlySet<string> = new Set(['granted', 'public']);

/** Runs `row` through each applicable transport; returns how many transport runs it made. */
export async function checkRow(g: AttackGate, row: Row): Promise<number> {
  const ctx: RowContext = { keys: g.keys, attackerUrl: g.attackerUrl };
  const headers = (await row.headers?.(ctx)) ?? [];
  const target = typeof row.target === 'function' ? row.target(ctx) : (row.target ?? '/orders/42');
  const sent = { method: row.method ?? 'GET', target, headers, body: row.body?.(ctx) };
  let runs = 0;
  for (const t of TRANSPORTS) {
    const o = row.on?.[t] ?? row.expect;
    if (o === 'skip') continue;
    const want = expected(o, t);
    const upstreamBefore = g.upstream.requests.length;
    const seen = await runCase(g, t, sent);
    const label = `${row.name} via ${t}`;
    expect({ status: seen.status, reason: seen.reason }, label).toEqual({ status: want.status, reason: want.reason });
    if (t === 'ext_authz_grpc' && want.grpcCode !== undefined) expect(seen.grpcCode, label).toBe(want.grpcCode);
    const allowed = want.reason !== null && ALLOW.has(want.reason);
    if (!allowed && seen.status !== 0 && t !== 'ext_authz_grpc') expect(seen.cacheControl, `${label}: no-store`).toBe('no-store');
    if (t === 'proxy') {
      if (allowed) await g.upstream.waitFor(upstreamBefore + 1);
      expect(g.upstream.requests.length - upstreamBefore, `${label}: requests the upstream saw`).toBe(allowed ? 1 : 0);
    }
    const rec = t === 'proxy' && allowed ? g.upstream.requests.at(-1) : undefined;
    if (rec !== undefined) await rec.done;
    row.verify?.(t, seen, rec);
    runs++;
  }
  expect(g.attackerHits, `${row.name}: the attacker server was contacted`).toEqual([]);
  return runs;
}

/**
 * Registers a corpus as tests: one that its row names are unique, then one per row through
 * `checkRow`. A row marked `bug` (a refusal the gate does not make yet) runs as `it.fails`, so the
 * suite stays green while the bug is open and turns red the day it is fixed (then drop the mark).
 */
export function rowTests(gate: () => AttackGate, rows: readonly (Row & { bug?: string })[]): void {
  it('has unique row names', () => {
    expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
  });
  for (const row of rows) {
    if (row.bug === undefined) it(row.name, async () => void (await checkRow(gate(), row)));
    else it.fails(`${row.name} [open bug: ${row.bug}]`, async () => void (await checkRow(gate(), row)));
  }
}
