/**
 * A latency histogram with 1 µs resolution up to 10 ms, 10 µs buckets up to 1 s and 1 ms buckets
 * up to 60 s (anything slower lands in the last bucket). autocannon's own histogram records whole milliseconds, too
 * coarse for "p99 within 0.5 ms of the plain proxy", so the bench records every response itself.
 */
const FINE_US = 10_000; // 0..10 ms, 1 µs per bucket
const COARSE_STEP_US = 10;
const COARSE_BUCKETS = 99_000; // 10 ms..1 s, 10 µs per bucket
const MID_END_US = FINE_US + COARSE_BUCKETS * COARSE_STEP_US; // 1 s
const SLOW_STEP_US = 1_000;
const SLOW_BUCKETS = 59_000; // 1 s..60 s, 1 ms per bucket
const LAST = FINE_US + COARSE_BUCKETS + SLOW_BUCKETS;

export interface Percentiles {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
  readonly count: number;
}

export class LatencyHistogram {
  readonly #counts = new Uint32Array(LAST + 1);
  #count = 0;
  #sumUs = 0;
  #maxUs = 0;

  /** One sample in milliseconds. */
  record(ms: number): void {
    const us = ms * 1000;
    let i: number;
    if (us < FINE_US) i = us < 0 ? 0 : Math.floor(us);
    else if (us < MID_END_US) i = FINE_US + Math.floor((us - FINE_US) / COARSE_STEP_US);
    else i = Math.min(FINE_US + COARSE_BUCKETS + Math.floor((us - MID_END_US) / SLOW_STEP_US), LAST);
    this.#counts[i]!++;
    this.#count++;
    this.#sumUs += us;
    if (us > this.#maxUs) this.#maxUs = us;
  }

  get count(): number {
    return this.#count;
  }

  /** Upper edge of the bucket holding quantile q, in ms. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.ceil(q * this.#count);
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return upperEdgeUs(i) / 1000;
    }
    return this.#maxUs / 1000;
  }

  percentiles(): Percentiles {
    return {
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: this.#maxUs / 1000,
      mean: this.#count === 0 ? 0 : this.#sumUs / this.#count / 1000,
      count: this.#count,
    };
  }
}

/** Mean and sample standard deviation. */
export function meanStddev(xs: readonly number[]): { mean: number; stddev: number } {
  if (xs.length === 0) return { mean: 0, stddev: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length === 1) return { mean, stddev: 0 };
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, stddev: Math.sqrt(v) };
}

function upperEdgeUs(i: number): number {
  if (i < FINE_US) return i + 1;
  if (i < FINE_US + COARSE_BUCKETS) return FINE_US + (i - FINE_US + 1) * COARSE_STEP_US;
  return MID_END_US + (i - FINE_US - COARSE_BUCKETS + 1) * SLOW_STEP_US;
}
