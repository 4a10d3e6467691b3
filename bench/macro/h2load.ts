/**
 * Load from h2load (nghttp2's C benchmark client, Debian `nghttp2-client`) for the ext_authz rows, over
 * HTTP/1.1 and over HTTP/2 (gRPC). Why a C client: on one HTTP/2 connection with 50 calls in flight,
 * the server answers a whole batch in one write and the client sends the next batch in one write, so
 * the two take turns. With the Node h2 client (grpc-load.ts), which costs about as much per call as
 * the gate, each side sat idle ~40 % of the time (pinned run: gate 60 %, client 75 % of a core) and
 * the row measured the client as much as the server. h2load's per-call cost is a few µs, as Envoy's
 * C++ client is, so these rows measure the gate. Used only when the binary is installed.
 *
 * h2load checks the HTTP status of every answer (its per-request log); a gRPC answer's `grpc-status`
 * is in the trailers it does not read, so the runner checks it twice over: a pre-flight Check decoded
 * by the Node client, and the gate's own decision counters over the run (every decision `granted`).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadResult } from './http-load.ts';
import { LatencyHistogram, meanStddev } from './histogram.ts';
import { findBinary } from './processes.ts';

const BINARY_CANDIDATES = ['/usr/bin/h2load', '/usr/local/bin/h2load'];

export function h2loadBinary(): string | undefined {
  return findBinary(BINARY_CANDIDATES, ['--version']);
}

export interface H2loadJob {
  readonly binary: string;
  readonly url: string;
  /** h1: one request at a time on each of `connections` (autocannon's shape); h2: `streams` in flight on each. */
  readonly protocol: 'h1' | 'h2';
  readonly connections: number;
  readonly streams: number;
  readonly headers: Readonly<Record<string, string>>;
  /** A POST body (sent with every request), else GET. */
  readonly body?: Buffer;
  readonly expectStatus: number;
  readonly durationSec: number;
  readonly warmupSec: number;
}

/**
 * Runs h2load for warm-up + duration. `beforeMeasure` runs when h2load starts its measured period (the
 * server's CPU and RSS snapshot), `afterMeasure` when h2load has exited; rates, percentiles and status
 * counts cover the answers that ended within the measured period.
 */
export async function runH2load(job: H2loadJob, beforeMeasure: () => Promise<void>, afterMeasure: () => Promise<void>): Promise<LoadResult> {
  const dir = await mkdtemp(join(tmpdir(), 'jitgate-h2load-'));
  try {
    const logFile = join(dir, 'requests.tsv');
    const args = ['-c', String(job.connections), '-m', String(job.streams), '-D', String(job.durationSec), `--warm-up-time=${job.warmupSec}`, `--log-file=${logFile}`];
    if (job.protocol === 'h1') args.push('--h1');
    for (const [k, v] of Object.entries(job.headers)) args.push('-H', `${k}: ${v}`);
    if (job.body !== undefined) {
      const bodyFile = join(dir, 'body.bin');
      await writeFile(bodyFile, job.body);
      args.push('-d', bodyFile);
    }
    args.push(job.url);
    const child = spawn(job.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let measureFrom = Number.POSITIVE_INFINITY;
    let measureTo = Number.POSITIVE_INFINITY;
    let started: Promise<void> = Promise.resolve();
    // h2load says when its measured period starts and ends (one line each, flushed as they happen); a
    // timer of our own would drift from its clock by however late our event loop runs.
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (measureFrom === Number.POSITIVE_INFINITY && out.includes('Main benchmark duration is started')) {
        measureFrom = Date.now() * 1000;
        started = beforeMeasure();
      }
      if (measureTo === Number.POSITIVE_INFINITY && out.includes('Main benchmark duration is over')) measureTo = Date.now() * 1000;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    // Bounded: h2load stops itself after warm-up + duration; this is only against a hung client.
    const kill = setTimeout(() => child.kill('SIGKILL'), (job.warmupSec + job.durationSec + 30) * 1000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(kill);
    await started;
    if (measureTo === Number.POSITIVE_INFINITY) measureTo = Date.now() * 1000;
    await afterMeasure();
    const said = (): string => out.trim().split('\n').slice(-4).join(' | ');
    if (code !== 0) throw new Error(`h2load exited with ${code}: ${said()}`);
    // h2load exits 0 when it could not connect at all.
    const tsv = await readFile(logFile, 'utf8').catch(() => '');
    if (tsv === '') throw new Error(`h2load got no answers: ${said()}`);
    return summarize(tsv, measureFrom, measureTo, job.expectStatus);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Rows `start_us \t status \t duration_us` (status -1: a failed stream); only answers that ended inside [from, to) count. */
export function summarize(tsv: string, fromUs: number, toUs: number, expectStatus: number): LoadResult {
  const hist = new LatencyHistogram();
  const ends: number[] = [];
  const statuses: Record<string, number> = {};
  let unexpected = 0;
  let errors = 0;
  let total = 0;
  for (const line of tsv.split('\n')) {
    if (line === '') continue;
    const [start, status, duration] = line.split('\t').map(Number) as [number, number, number];
    const end = start + duration;
    if (!(end >= fromUs && end < toUs)) continue;
    // Status 0: the stream was still waiting for its answer when h2load's timer stopped the run (at most
    // connections × streams of them, seen under CPU load). Not an answer, and not the server's failure.
    if (status === 0) continue;
    total++;
    if (status === -1) {
      errors++;
      continue;
    }
    statuses[String(status)] = (statuses[String(status)] ?? 0) + 1;
    if (status !== expectStatus) unexpected++;
    hist.record(duration / 1000);
    ends.push(end);
  }
  const seconds = (toUs - fromUs) / 1e6;
  // The window's edges are when h2load's start and end lines reached our event loop, each late by however
  // busy it was, so a 1 s run can measure 0.93 s or 1.06 s. One sample per whole second would then give
  // none or drop a tail; instead the window is cut into its nearest whole number of equal slices and each
  // sample is that slice's answers per second.
  const slices = seconds > 0 ? Math.max(1, Math.round(seconds)) : 0;
  const sliceUs = (toUs - fromUs) / Math.max(1, slices);
  const counts = new Array<number>(slices).fill(0);
  for (const end of ends) counts[Math.min(slices - 1, Math.floor((end - fromUs) / sliceUs))]!++;
  const samples = counts.map((c) => c / (sliceUs / 1e6));
  return { rps: { ...meanStddev(samples), samples }, latency: hist.percentiles(), total, statuses, unexpected, errors, seconds };
}
