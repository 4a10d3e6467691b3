/**
 * The load loop of `jitgate bench`: `connections` keep-alive HTTP/1.1 connections (undici Clients), each sending one
 * request at a time for `durationMs`, optionally paced so that all together offer `rate` requests per second. Every
 * answer is recorded with its latency, its status and whether that status is what its kind expects.
 *
 * Bounded by design: it stops by itself after the duration, and a request in flight then gets at most `timeoutMs`.
 *
 * @module
 */
import { Client } from 'undici';
import { LatencyHistogram, type Percentiles } from './latency-histogram.ts';
import { isExpected, type Kind } from './mix.ts';
import type { BenchRequest } from './requests.ts';

export interface LoadOptions {
  readonly target: URL;
  readonly connections: number;
  readonly durationMs: number;
  /** Offered requests per second over all connections; undefined: as fast as answers come. */
  readonly rate: number | undefined;
  readonly timeoutMs: number;
  /** The kind of the n-th request, cycled. */
  readonly schedule: readonly Kind[];
  readonly requests: ReadonlyMap<Kind, readonly BenchRequest[]>;
  /** Called about once a second while the load runs. */
  readonly onTick?: (elapsedMs: number, completed: number) => void;
}

export interface KindResult {
  sent: number;
  unexpected: number;
  readonly statuses: Record<string, number>;
}

export interface LoadResult {
  readonly seconds: number;
  readonly completed: number;
  readonly rps: number;
  readonly latency: Percentiles;
  readonly statuses: Readonly<Record<string, number>>;
  readonly byKind: Readonly<Partial<Record<Kind, KindResult>>>;
  readonly unexpected: number;
  /** Requests that got no answer (connection errors, timeouts), by error code. */
  readonly errors: Readonly<Record<string, number>>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const hist = new LatencyHistogram();
  const statuses: Record<string, number> = {};
  const byKind: Partial<Record<Kind, KindResult>> = {};
  const errors: Record<string, number> = {};
  const cursor = new Map<Kind, number>();
  let n = 0;
  let completed = 0;
  let unexpected = 0;

  const next = (): BenchRequest => {
    const kind = o.schedule[n++ % o.schedule.length]!;
    const list = o.requests.get(kind)!;
    const i = cursor.get(kind) ?? 0;
    cursor.set(kind, i + 1);
    return list[i % list.length]!;
  };

  const start = performance.now();
  const end = start + o.durationMs;
  const interval = o.rate === undefined ? 0 : (1000 * o.connections) / o.rate;

  const worker = async (index: number): Promise<void> => {
    const client = new Client(o.target.origin, { headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs, pipelining: 1 });
    // Staggered starts, so a paced run does not send its requests in bursts of `connections`.
    let due = start + (interval * index) / o.connections;
    try {
      while (performance.now() < end) {
        if (interval > 0) {
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          due += interval;
          if (performance.now() >= end) break;
        }
        const r = next();
        const k = (byKind[r.kind] ??= { sent: 0, unexpected: 0, statuses: {} });
        k.sent++;
        const t0 = performance.now();
        try {
          const res = await client.request({ method: r.method, path: r.path, headers: r.headers });
          await res.body.dump();
          hist.record(performance.now() - t0);
          completed++;
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          k.statuses[res.statusCode] = (k.statuses[res.statusCode] ?? 0) + 1;
          if (!isExpected(r.kind, res.statusCode)) {
            unexpected++;
            k.unexpected++;
          }
        } catch (err) {
          const code = (err as { code?: string }).code ?? (err as Error).name;
          errors[code] = (errors[code] ?? 0) + 1;
          // A refused or reset connection: do not spin; try again shortly.
          await sleep(10);
        }
      }
    } finally {
      await client.close().catch(() => client.destroy());
    }
  };

  const ticker = o.onTick === undefined ? undefined : setInterval(() => o.onTick!(performance.now() - start, completed), 1000);
  try {
    await Promise.all(Array.from({ length: o.connections }, (_, i) => worker(i)));
  } finally {
    if (ticker) clearInterval(ticker);
  }
  const seconds = (performance.now() - start) / 1000;
  return { seconds, completed, rps: completed / seconds, latency: hist.percentiles(), statuses, byKind, unexpected, errors };
}
