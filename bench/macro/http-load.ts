/**
 * One HTTP load run with autocannon (programmatic, in the runner process; every server is another
 * process): a warm-up run that is thrown away, then the measured run. Each response is recorded
 * here — status and latency at 1 µs resolution — so a scenario that answers anything other than
 * its expected status is reported as such instead of as speed.
 */
import { createRequire } from 'node:module';
import { LatencyHistogram, meanStddev, type Percentiles } from './histogram.ts';

export interface RequestSpec {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
}

export interface HttpLoadOptions {
  readonly port: number;
  /** One request for every connection, or each connection's own list (cycled), e.g. a slice of 10,000 tokens. */
  readonly request: RequestSpec | ((connection: number) => readonly RequestSpec[]);
  /** The status every answer must have (a list for mixed traffic). */
  readonly expectStatus: number | readonly number[];
  readonly connections: number;
  readonly pipelining: number;
  /** Offered load in req/s over all connections (autocannon overallRate); undefined: as fast as possible. */
  readonly rate?: number | undefined;
  readonly durationSec: number;
  readonly warmupSec: number;
  /** Called between the warm-up and the measured run, and after it (CPU, RSS and metric snapshots). */
  readonly beforeMeasure?: () => Promise<void>;
  readonly afterMeasure?: () => Promise<void>;
  /** Called every second during the measured run (RSS sampling for the soak). */
  readonly everySecond?: (elapsedSec: number) => void;
  /** HTTPS with these client TLS options (a client certificate: cert, key) instead of plain HTTP. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

export interface LoadResult {
  /** Requests per second: mean and stddev over whole one-second windows. */
  readonly rps: { readonly mean: number; readonly stddev: number; readonly samples: readonly number[] };
  readonly latency: Percentiles;
  readonly total: number;
  readonly statuses: Readonly<Record<string, number>>;
  /** Responses whose status was not the expected one. */
  readonly unexpected: number;
  /** Socket errors and timeouts. */
  readonly errors: number;
  readonly seconds: number;
}

interface AutocannonClient {
  setRequests(requests: object[]): void;
}
interface AutocannonInstance {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
}
interface AutocannonRaw {
  readonly errors: number;
  readonly timeouts: number;
}
type Autocannon = (opts: object, cb: (err: Error | null, res: AutocannonRaw) => void) => AutocannonInstance;
/** autocannon ships no types; this is the part used here. */
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function toAutocannon(r: RequestSpec): object {
  return { method: r.method, path: r.path, headers: { ...r.headers }, ...(r.body === undefined ? {} : { body: r.body }) };
}

function acOptions(o: HttpLoadOptions, durationSec: number): object {
  const base = {
    url: `${o.tls === undefined ? 'http' : 'https'}://127.0.0.1:${o.port}`,
    ...(o.tls === undefined ? {} : { tlsOptions: { cert: o.tls.cert, key: o.tls.key } }),
    connections: o.connections,
    pipelining: o.pipelining,
    duration: durationSec,
    timeout: 10,
    ...(o.rate === undefined ? {} : { overallRate: o.rate }),
  };
  const r = o.request;
  if (typeof r === 'function') {
    let n = 0;
    const first = r(0)[0]!;
    return {
      ...base,
      requests: [toAutocannon(first)],
      setupClient: (client: AutocannonClient) => client.setRequests(r(n++).map(toAutocannon)),
    };
  }
  return { ...base, requests: [toAutocannon(r)] };
}

function once(opts: object, onResponse?: (status: number, ms: number) => void): Promise<AutocannonRaw> {
  return new Promise((resolve, reject) => {
    const inst = autocannon(opts, (err, res) => (err ? reject(err) : resolve(res)));
    if (onResponse) inst.on('response', (_c, status, _b, ms) => onResponse(status, ms));
  });
}

export async function runHttpLoad(o: HttpLoadOptions): Promise<LoadResult> {
  if (o.warmupSec > 0) await once(acOptions(o, o.warmupSec));
  await o.beforeMeasure?.();
  const expected = new Set(typeof o.expectStatus === 'number' ? [o.expectStatus] : o.expectStatus);

  const hist = new LatencyHistogram();
  const statuses: Record<string, number> = {};
  const windows: number[] = [];
  let unexpected = 0;
  const start = performance.now();
  const ticker = o.everySecond === undefined ? undefined : setInterval(() => o.everySecond!((performance.now() - start) / 1000), 1000);
  const raw = await once(acOptions(o, o.durationSec), (status, ms) => {
    const w = Math.floor((performance.now() - start) / 1000);
    windows[w] = (windows[w] ?? 0) + 1;
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (!expected.has(status)) unexpected++;
    hist.record(ms);
  });
  const seconds = (performance.now() - start) / 1000;
  if (ticker) clearInterval(ticker);
  await o.afterMeasure?.();
  // Whole windows only: the last one is cut short when the run stops.
  const samples = Array.from({ length: Math.min(Math.floor(seconds), o.durationSec) }, (_, i) => windows[i] ?? 0);
  return {
    rps: { ...meanStddev(samples), samples },
    latency: hist.percentiles(),
    total: hist.count,
    statuses,
    unexpected,
    errors: raw.errors,
    seconds,
  };
}
