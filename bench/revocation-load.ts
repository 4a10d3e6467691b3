/**
 * How long a revocation list of N entries takes to load, what it costs in memory, and whether
 * lookups stay O(1) as it grows (SPEC §5; issue 4 "1,000,000 entries load in bounded time and
 * memory"). Loads go through the production paths: FileRevocationSource.reload (read, parse,
 * index, prune) and HttpRevocationSource over loopback.
 *
 *   npm exec -- node bench/revocation-load.ts [entries=1000000]   (Node 24 from node_modules)
 *
 * test/revocation/load-1m.test.ts runs the same measurements with generous bounds.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RevocationEntry } from '../src/revocation/entries.ts';
import { FileRevocationSource } from '../src/revocation/file-source.ts';
import { HttpRevocationSource } from '../src/revocation/http-source.ts';
import { RevocationIndex } from '../src/revocation/revocation-index.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const NOW_SEC = Math.floor(Date.now() / 1000);
const MB = 1024 * 1024;

/** Entry i of a synthetic feed: 90% jti, 5% sub+before, 5% txn, all expiring in a day. */
function line(i: number): string {
  const exp = NOW_SEC + 86_400;
  if (i % 20 === 0) return `{"sub":"spiffe://prod/workload-${i}","before":${NOW_SEC},"exp":${exp}}`;
  if (i % 20 === 1) return `{"txn":"task-${i.toString(36)}-${i}","exp":${exp}}`;
  return `{"jti":"0b7c${i.toString(16).padStart(8, '0')}-5f0c-4e4e-9d7a-${(i * 2654435761 >>> 0).toString(16).padStart(12, '0')}","exp":${exp}}`;
}

export async function writeFeed(file: string, n: number): Promise<number> {
  const out = createWriteStream(file);
  const BATCH = 10_000;
  for (let i = 0; i < n; i += BATCH) {
    let chunk = '';
    for (let j = i; j < Math.min(n, i + BATCH); j++) chunk += `${line(j)}\n`;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return (await stat(file)).size;
}

export interface LoadMeasurement {
  readonly entries: number;
  readonly fileBytes: number;
  readonly loadMs: number;
  /** CPU this process spent on the load (user + system, all threads), ms: unlike loadMs, not stretched by other processes. */
  readonly cpuMs: number;
  /** Heap retained by the loaded index (after GC), bytes. */
  readonly heapGrowth: number;
  /** Peak heap seen during the load (sampled), above the baseline, bytes. */
  readonly peakHeapGrowth: number;
  readonly rssGrowth: number;
}

/** Samples heapUsed every few ms while `work` runs; returns the peak. */
async function withPeak<T>(work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = process.memoryUsage().heapUsed;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 5);
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}

/** Loads `file` through FileRevocationSource and keeps the index alive while measuring. */
export async function measureFileLoad(file: string, entries: number): Promise<LoadMeasurement & { index: RevocationIndex }> {
  gc();
  const base = process.memoryUsage();
  const source = new FileRevocationSource(file, 60_000);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const { peak } = await withPeak(() => source.reload());
  const loadMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  gc();
  const after = process.memoryUsage();
  if (source.index.size !== entries) throw new Error(`loaded ${source.index.size} entries, expected ${entries}`);
  return {
    entries,
    fileBytes: (await stat(file)).size,
    loadMs,
    cpuMs: (used.user + used.system) / 1000,
    heapGrowth: after.heapUsed - base.heapUsed,
    peakHeapGrowth: peak - base.heapUsed,
    rssGrowth: after.rss - base.rss,
    index: source.index,
  };
}

/** Serves `file` on loopback and times one full HttpRevocationSource sync. */
export async function measureHttpLoad(file: string, entries: number): Promise<{ loadMs: number }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/jsonl', etag: '"bench"' });
    createReadStream(file).pipe(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/feed.jsonl`;
  const source = new HttpRevocationSource({ url, pollMs: 3_600_000, maxStaleMs: 3_600_000, timeoutMs: 120_000, maxBytes: 256 * MB });
  const started = performance.now();
  await source.start();
  const loadMs = performance.now() - started;
  source.stop();
  server.close();
  if (source.index.size !== entries) throw new Error(`HTTP load got ${source.index.size} entries, expected ${entries}`);
  return { loadMs };
}

function jtiEntries(n: number, prefix: string): RevocationEntry[] {
  return Array.from({ length: n }, (_, i) => ({ kind: 'jti', jti: `${prefix}-${i.toString(16)}-${(i * 2654435761) >>> 0}`, exp: undefined }));
}

/** Best-of-5 time for `count` isRevoked calls, half hits and half misses, on fresh key strings. */
function timeLookups(index: RevocationIndex, entries: readonly RevocationEntry[], count: number): number {
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    const e = entries[(i * 7919) % entries.length]!;
    const id = e.kind === 'jti' ? e.jti : '';
    queries.push(i % 2 === 0 ? Buffer.from(id).toString() : `miss-${i}`);
  }
  let best = Number.POSITIVE_INFINITY;
  let hits = 0;
  // CPU time, not wall time: a round preempted by another process is not charged for the wait.
  for (let round = 0; round < 6; round++) {
    const t = process.cpuUsage();
    for (let i = 0; i < count; i++) if (index.isRevoked(queries[i]!, 'spiffe://prod/none', NOW_SEC, undefined)) hits++;
    const used = process.cpuUsage(t);
    const ms = (used.user + used.system) / 1000;
    if (round > 0) best = Math.min(best, ms); // round 0 warms up
  }
  if (hits === 0) throw new Error('no lookup hit');
  return best;
}

/**
 * `count` lookups against indexes of each size (best round, CPU ms). A hash lookup costs the same at any size once
 * the table no longer fits in the CPU cache; a small table that does fit is faster, so compare
 * both 1k → 1M (cache effect included) and 100k → 1M (both out of cache: should be flat).
 */
export function measureLookupScaling(sizes: readonly number[] = [1_000, 100_000, 1_000_000], count = 100_000): Array<{ entries: number; ms: number }> {
  return sizes.map((n) => {
    const entries = jtiEntries(n, `n${n}`);
    return { entries: n, ms: timeLookups(new RevocationIndex(entries), entries, count) };
  });
}

const fmtMb = (b: number) => `${(b / MB).toFixed(1)} MB`;

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 1_000_000);
  const dir = await mkdtemp(join(tmpdir(), 'jitgate-bench-'));
  try {
    const file = join(dir, 'revoked.jsonl');
    const bytes = await writeFeed(file, n);
    console.log(`node ${process.version}, ${n.toLocaleString('en')} entries, feed ${fmtMb(bytes)}`);
    const m = await measureFileLoad(file, n);
    console.log(`file load: ${(m.loadMs / 1000).toFixed(2)} s; heap retained ${fmtMb(m.heapGrowth)} (peak +${fmtMb(m.peakHeapGrowth)}); RSS +${fmtMb(m.rssGrowth)}; ${(m.heapGrowth / n).toFixed(0)} B/entry`);
    const h = await measureHttpLoad(file, n);
    console.log(`HTTP load (loopback, one sync): ${(h.loadMs / 1000).toFixed(2)} s`);
    const sizes = [1_000, 100_000, n].filter((x, i, a) => a.indexOf(x) === i);
    const l = measureLookupScaling(sizes);
    const last = l.at(-1)!;
    console.log(`100k lookups: ${l.map((r) => `${r.ms.toFixed(2)} ms at ${r.entries.toLocaleString('en')}`).join(', ')}`);
    console.log(`ratios: ${l.slice(0, -1).map((r) => `${r.entries.toLocaleString('en')} → ${last.entries.toLocaleString('en')}: ${(last.ms / r.ms).toFixed(2)}x`).join(', ')} (a linear scan would be ${(last.entries / 1_000).toLocaleString('en')}x from 1k)`);
    console.log(`process RSS now ${fmtMb(process.memoryUsage().rss)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.filename === process.argv[1]) await main();
