/**
 * A Prometheus histogram for the request path: `observe` on a bound child is a bucket search and
 * three array/number updates. prom-client's own bound child rebuilds and validates its label
 * object, hashes it into a string key and looks that key up on every call, which at two
 * histograms per proxied request was a visible share of the gate's CPU (bench/README.md).
 *
 * It registers in a prom-client Registry as a custom metric and reports exactly what a
 * prom-client Histogram with the same name, labels and buckets reports — the same exposition
 * text and the same JSON for cluster aggregation (test/observability/fast-histogram.test.ts).
 */
import type { Registry } from 'prom-client';

export interface FastHistogramConfig<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  /** Upper bounds, ascending. */
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

export interface HistogramChild {
  observe(value: number): void;
}

interface ValuePair {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  exemplar?: null;
}

class Child implements HistogramChild {
  readonly labels: Readonly<Record<string, string>>;
  readonly #bounds: Float64Array;
  /** The histogram's label sets in first-observed order, as prom-client lists them. */
  readonly #order: Child[];
  /** Per-bucket counts; the last slot is for values above every bound (+Inf only). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(labels: Readonly<Record<string, string>>, bounds: Float64Array, order: Child[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.#order = order;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    if (this.count++ === 0) this.#order.push(this);
  }
}

export class FastHistogram<L extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly L[];
  readonly #bounds: Float64Array;
  readonly #children = new Map<string, Child>();
  readonly #order: Child[] = [];

  constructor(config: FastHistogramConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.#labelNames = config.labelNames;
    this.#bounds = Float64Array.from(config.buckets);
    for (const r of config.registers) r.registerMetric(this as never);
  }

  /** The child for these label values, in `labelNames` order; bind once, observe per request. */
  labels(...values: string[]): HistogramChild {
    if (values.length !== this.#labelNames.length) throw new Error(`${this.name}: expected ${this.#labelNames.length} label values, got ${values.length}`);
    const key = values.join('\u0000');
    let c = this.#children.get(key);
    if (c === undefined) {
      const labels: Record<string, string> = {};
      this.#labelNames.forEach((n, i) => (labels[n] = values[i]!));
      c = new Child(labels, this.#bounds, this.#order);
      this.#children.set(key, c);
    }
    return c;
  }

  /** What prom-client's Histogram#getForPromString returns: label sets observed so far, in first-observed order. */
  async getForPromString(): Promise<{ name: string; help: string; type: string; values: ValuePair[]; aggregator: string }> {
    const values: ValuePair[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.#order) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += c.counts[i]!;
        values.push({ labels: { le: this.#bounds[i]! }, sharedLabels: c.labels, value: acc, metricName: bucket, exemplar: null });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: c.labels, value: c.count, metricName: bucket, exemplar: null });
      values.push({ labels: {}, sharedLabels: c.labels, value: c.sum, metricName: `${this.name}_sum`, exemplar: undefined as never });
      values.push({ labels: {}, sharedLabels: c.labels, value: c.count, metricName: `${this.name}_count`, exemplar: undefined as never });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** What prom-client's Histogram#get returns: shared labels folded into each value's labels. */
  async get(): Promise<{ name: string; help: string; type: string; values: ValuePair[]; aggregator: string }> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return data;
  }

  reset(): void {
    for (const c of this.#order) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
    this.#order.length = 0;
  }
}
