/**
 * Shared pieces of the status list tests: a token that points into a list, a decision through the
 * real Gate, and polling for what a background refresh changes.
 */
import { randomUUID } from 'node:crypto';
import { systemClock } from '../../src/core/clock.ts';
import type { Decision } from '../../src/core/decision.ts';
import { REASONS } from '../../src/core/reasons.ts';
import type { Gate } from '../../src/gate.ts';
import type { IssuerKeys } from '../../src/keys/issuer-keys.ts';
import { FetchError } from '../../src/net/bounded-get.ts';
import { StatusListEntry, type StatusListFetchInfo, type StatusListSettings } from '../../src/status-list/list-entry.ts';
import { bearer, input } from '../fixtures/gate.ts';
import type { TestKey } from '../fixtures/keys.ts';
import { sign } from '../fixtures/tokens.ts';

export function statusClaim(uri: unknown, idx: unknown): Record<string, unknown> {
  return { status: { status_list: { idx, uri } } };
}

/** A grant token of `key`'s issuer (A unless `iss` says otherwise) pointing at (uri, idx), with a fresh jti. */
export function statusToken(key: TestKey, uri: unknown, idx: unknown, claims: Record<string, unknown> = {}): Promise<string> {
  return sign(key, { jti: randomUUID(), ...statusClaim(uri, idx), ...claims });
}

export function decideToken(gate: Gate, token: string): Decision | Promise<Decision> {
  return gate.decide(input('GET', '/orders/42', bearer(token)));
}

/** The decision's reason and the HTTP status SPEC §3 gives it (0 for an allow). */
export async function outcome(gate: Gate, token: string): Promise<{ kind: string; reason: string; status: number }> {
  const d = await decideToken(gate, token);
  return { kind: d.kind, reason: d.reason, status: REASONS[d.reason].status };
}

/** Resolves when `cond` holds (it may be async), polling every 10 ms; rejects after timeoutMs. */
export async function eventually(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const started = performance.now();
  while (!(await cond())) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A list entry whose publisher answers every fetch 404: how many fetches it made, and their reports. */
export interface FailingEntry {
  readonly entry: StatusListEntry;
  readonly infos: StatusListFetchInfo[];
  gets: number;
}

export function failingEntry(uri: string, settings: StatusListSettings): FailingEntry {
  const f: { entry?: StatusListEntry; infos: StatusListFetchInfo[]; gets: number } = { infos: [], gets: 0 };
  f.entry = new StatusListEntry(uri, {
    settings,
    keys: {} as IssuerKeys, // never consulted: every fetch fails before a list is verified
    clock: systemClock, // Date.now: fake timers fake it too
    get: async () => {
      f.gets++;
      throw new FetchError('http_status', 'HTTP 404', { httpStatus: 404 });
    },
    onFetch: (i) => f.infos.push(i),
  });
  return f as FailingEntry;
}
