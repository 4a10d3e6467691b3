/**
 * The load loop of `jitgate bench`: `connections` keep-alive HTTP/1.1 connections (undici Clients), each with one
 * request at a time, for `durationMs`. Every answer is recorded with its latency, its status and whether that status
 * is what its kind expects.
 *
 * Two modes:
 * - closed loop (no `rate`): each connection sends its next request when the last is answered;
 * - open loop (`rate`): request k is due at `start + k / rate`, whatever came before it. A connection takes the next
 *   due request as soon as it is free, and a request's latency counts from when it was due, not from when a
 *   connection was free to send it: a target that stalls shows as the waits its callers would have seen, not as the
 *   few answers that came in the stall (coordinated omission). Requests still waiting for a connection when the
 *   duration ends are not sent, and counted (`notSent`).
 *
 * Bounded by design: nothing is sent after the duration, a request in flight then gets at most `timeoutMs`, and
 * `signal` (SIGINT) ends the run at once, cutting what is in flight.
 *
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'undici';
import { withDeadline } from '../deadline.ts';
import { LatencyHistogram, type Percentiles } from './latency-histogram.ts';
import { isExpected, type Kind } from './mix.ts';
import type { BenchRequest } from './requests.ts';

export interface LoadOptions {
  readonly target: URL;
  readonly connections: number;
  readonly durationMs: number;
  /** Offered requests per second over all connections (open loop); undefined: as fast as answers come. */
  readonly rate: number | undefined;
  readonly timeoutMs: number;
  /** The kind of the n-th request, cycled. */
  readonly schedule: readonly Kind[];
  readonly requests: ReadonlyMap<Kind, readonly BenchRequest[]>;
  /** PEM CA certificates for an https target (default: Node's bundled roots). */
  readonly ca?: string;
  /** Ends the run early (SIGINT): nothing more is sent and what is in flight is cut. */
  readonly signal?: AbortSignal;
  /** Called about once a second while the load runs. */
  readonly onTick?: (elapsedMs: number, completed: number) => void;
}

export interface KindResult {
  /** Requests sent (answered or not). */
  sent: number;
  unexpected: number;
  /** Requests that got no answer. */
  failed: number;
  readonly statuses: Record<string, number>;
}

export interface LoadResult {
  readonly seconds: number;
  /** Requests sent, answered or not. */
  readonly sent: number;
  readonly completed: number;
  readonly rps: number;
  /** Connections that were established at least once. */
  readonly opened: number;
  /** Open loop only: requests that fell due but found no free connection before the duration ended. */
  readonly notSent: number;
  /** Ended early by `signal`. */
  readonly interrupted: boolean;
  readonly latency: Percentiles;
  readonly statuses: Readonly<Record<string, number>>;
  readonly byKind: Readonly<Partial<Record<Kind, KindResult>>>;
  readonly unexpected: number;
  /** Requests that got no answer (connection errors, timeouts), by error code. */
  readonly errors: Readonly<Record<string, number>>;
}

/** After a request got no answer, a closed-loop connection waits this long before the next: a refused connection must not spin. */
const ERROR_PAUSE_MS = 10;

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const hist = new LatencyHistogram();
  const byKind: Partial<Record<Kind, KindResult>> = {};
  const errors: Record<string, number> = {};
  const cursor = new Map<Kind, number>();
  let n = 0;
  let completed = 0;
  let opened = 0;
  let notSent = 0;

  const next = (): BenchRequest => {
    const kind = o.schedule[n++ % o.schedule.length]!;
    const list = o.requests.get(kind)!;
    const i = cursor.get(kind) ?? 0;
    cursor.set(kind, i + 1);
    return list[i % list.length]!;
  };

  const signal = o.signal ?? new AbortController().signal;
  const stopped = (): boolean => signal.aborted;
  /** Waits `ms`; false when the run was stopped meanwhile. */
  const pause = (ms: number): Promise<boolean> =>
    sleep(ms, undefined, { signal }).then(
      () => true,
      () => false,
    );

  const start = performance.now();
  const end = start + o.durationMs;
  const rate = o.rate;
  /** Open loop: when request k falls due. k * 1000 / rate, not k * (1000 / rate): at 61 a second that drifted a 62nd request into 1 s. */
  const dueAt = (k: number): number => start + (k * 1000) / rate!;
  /** Open loop: the index of the next request to fall due, shared by every connection. */
  let due = 0;

  /** Past this a request is given up whatever undici does: its own timeouts did not always run (see open()). */
  const deadlineMs = 2 * o.timeoutMs + 1000;

  /** Sends one request; its latency counts from `from`. False when it got no answer. */
  const send = async (client: Client, from: number): Promise<boolean> => {
    const r = next();
    const k = (byKind[r.kind] ??= { sent: 0, unexpected: 0, failed: 0, statuses: {} });
    k.sent++;
    try {
      const answer = client.request({ method: r.method, path: r.path, headers: r.headers }).then(async (res) => {
        await res.body.dump();
        return res.statusCode;
      });
      const status = await withDeadline(answer, deadlineMs, () => new NoAnswer(deadlineMs));
      hist.record(performance.now() - from);
      completed++;
      k.statuses[status] = (k.statuses[status] ?? 0) + 1;
      if (!isExpected(r.kind, status)) k.unexpected++;
      return true;
    } catch (err) {
      if (stopped()) {
        // Cut by the interrupt, not refused by the target: not counted as sent at all.
        k.sent--;
        return false;
      }
      k.failed++;
      const code = err instanceof NoAnswer ? err.message : ((err as { code?: string }).code ?? (err as Error).name);
      errors[code] = (errors[code] ?? 0) + 1;
      return false;
    }
  };

  /** Every connection's current client, so that an interrupt can cut them all at once. */
  const clients = new Set<Client>();
  const cutAll = (): void => {
    for (const c of clients) void c.destroy().catch(() => {});
  };
  signal.addEventListener('abort', cutAll, { once: true });
  /**
   * A new client for one connection. After a request got no answer the connection's client is replaced: undici 7
   * left a Client whose TLS handshake had failed on the host name (ERR_TLS_CERT_ALTNAME_INVALID) with a next request
   * that never settled, ignoring its timeouts and its abort signal (a reviewer's probe hung for ten minutes).
   */
  const open = (onConnect: () => void): Client => {
    const c = new Client(o.target.origin, {
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      pipelining: 1,
      connect: o.ca === undefined ? { timeout: o.timeoutMs } : { timeout: o.timeoutMs, ca: o.ca },
    });
    c.on('connect', onConnect);
    clients.add(c);
    return c;
  };
  const close = async (c: Client, now: boolean): Promise<void> => {
    clients.delete(c);
    await (now ? c.destroy() : c.close()).catch(() => c.destroy().catch(() => {}));
  };

  const worker = async (): Promise<void> => {
    let connected = false;
    const onConnect = (): void => {
      if (!connected) opened++;
      connected = true;
    };
    let client = open(onConnect);
    const attempt = async (from: number): Promise<boolean> => {
      if (await send(client, from)) return true;
      if (!stopped()) {
        void close(client, true);
        client = open(onConnect);
      }
      return false;
    };
    try {
      if (rate === undefined) {
        while (!stopped() && performance.now() < end) {
          if (!(await attempt(performance.now())) && !(await pause(ERROR_PAUSE_MS))) break;
        }
        return;
      }
      while (!stopped()) {
        const at = dueAt(due);
        if (at >= end) break;
        due++;
        const now = performance.now();
        // Fell due while every connection was busy, and this one came free only after the duration: not sent.
        if (now >= end) {
          notSent++;
          break;
        }
        if (at > now && !(await pause(at - now))) break;
        await attempt(at);
      }
    } finally {
      await close(client, stopped());
    }
  };

  const ticker = o.onTick === undefined ? undefined : setInterval(() => o.onTick!(performance.now() - start, completed), 1000);
  try {
    await Promise.all(Array.from({ length: o.connections }, () => worker()));
  } finally {
    if (ticker) clearInterval(ticker);
    signal.removeEventListener('abort', cutAll);
  }
  const paced = rate !== undefined && !stopped();
  // Requests that fell due before the end but were never taken by a connection (each connection above counts only
  // the one it held when the duration ended), counted with the connections' own comparison (dueAt(k) >= end).
  if (paced) {
    let slots = Math.ceil((o.durationMs * rate) / 1000);
    while (slots > 0 && dueAt(slots - 1) >= end) slots--;
    while (dueAt(slots) < end) slots++;
    notSent += Math.max(0, slots - due);
  }
  // An open loop offers its load for the whole duration, even when its last request fell due and was answered early.
  const elapsed = (performance.now() - start) / 1000;
  const seconds = paced ? Math.max(elapsed, o.durationMs / 1000) : elapsed;
  const kinds = Object.values(byKind);
  const statuses: Record<string, number> = {};
  for (const k of kinds) for (const [status, count] of Object.entries(k.statuses)) statuses[status] = (statuses[status] ?? 0) + count;
  const sum = (of: (k: KindResult) => number): number => kinds.reduce((a, k) => a + of(k), 0);
  return { seconds, sent: sum((k) => k.sent), completed, rps: completed / seconds, opened, notSent, interrupted: stopped(), latency: hist.percentiles(), statuses, byKind, unexpected: sum((k) => k.unexpected), errors };
}

/** A request past its hard deadline; the message is the error code the report shows. */
class NoAnswer extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}
