/**
 * The jitgate processes of a run, one config variant at a time: writes the variant's config, starts
 * `jitgate serve -c`, waits for /readyz, checks once that an allowed request reaches the upstream
 * with the identity headers and without the token, and scrapes /metrics for per-scenario deltas.
 */
import { join } from 'node:path';
import { SUBJECT, writeGateConfig, writeRevocationFile, type Fixtures, type GatePorts, type GateVariant } from './fixtures.ts';
import { freePorts, rssOfTree, spawnGate, stopProcess, waitReady, type GateProcess } from './processes.ts';
import { VARIANTS, type VariantName } from './scenarios.ts';

export interface RunningGate {
  readonly variant: VariantName;
  readonly proc: GateProcess;
  readonly ports: GatePorts;
  readonly startupMs: number;
  readonly rssReadyMB: number;
  /** Problems found by the sanity check; every row on this gate carries them. */
  readonly problems: readonly string[];
}

export type MetricSnapshot = ReadonlyMap<string, number>;

export class Gates {
  readonly #fx: Fixtures;
  readonly #upstreamPort: number;
  readonly #workers: number;
  readonly #nodeFlags: readonly string[];
  readonly #root: string | undefined;
  readonly #cpus: string | undefined;
  #current: RunningGate | undefined;

  /** `cpus` (--pin): the gate starts on those cores, so it sizes itself for them (workers, where it verifies signatures). */
  constructor(fx: Fixtures, upstreamPort: number, workers: number, nodeFlags: readonly string[], root?: string, cpus?: string) {
    this.#root = root;
    this.#cpus = cpus;
    this.#fx = fx;
    this.#upstreamPort = upstreamPort;
    this.#workers = workers;
    this.#nodeFlags = nodeFlags;
  }

  /** The running gate for `variant`, starting it (and stopping any other) when needed. */
  async use(variant: VariantName, log: (line: string) => void): Promise<RunningGate> {
    if (this.#current?.variant === variant) return this.#current;
    await this.stop();
    let v: GateVariant = VARIANTS[variant];
    if (v.revocationFile !== undefined) {
      const file = join(this.#fx.dir, v.revocationFile);
      const t0 = performance.now();
      await writeRevocationFile(file, 1_000_000);
      log(`  wrote 1,000,000 revocation entries in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      v = { ...v, revocationFile: file };
    }
    const [proxy, admin, extAuthzHttp, extAuthzGrpc] = (await freePorts(4)) as [number, number, number, number];
    const ports = { proxy, admin, extAuthzHttp, extAuthzGrpc };
    const file = await writeGateConfig(this.#fx, variant, v, ports, this.#upstreamPort, this.#workers);
    const t0 = performance.now();
    const proc = spawnGate(file, { nodeFlags: this.#nodeFlags, root: this.#root, cpus: this.#cpus });
    await waitReady(proc, admin, 60_000);
    const startupMs = performance.now() - t0;
    const problems = await this.#sanity(proxy);
    const rssReadyMB = rssOfTree(proc.pid) / 2 ** 20;
    log(`  jitgate [${variant}] ready in ${(startupMs / 1000).toFixed(1)} s, RSS ${rssReadyMB.toFixed(0)} MB${problems.length > 0 ? `, PROBLEMS: ${problems.join('; ')}` : ''}`);
    this.#current = { variant, proc, ports, startupMs, rssReadyMB, problems };
    return this.#current;
  }

  async stop(): Promise<void> {
    const c = this.#current;
    this.#current = undefined;
    if (c) await stopProcess(c.proc.proc, 15_000);
  }

  /** An allowed request reaches the upstream with x-jit-subject set and Authorization removed (SPEC §4). */
  async #sanity(port: number): Promise<string[]> {
    const problems: string[] = [];
    const r = await fetch(`http://127.0.0.1:${port}/orders/echo-headers`, { headers: { authorization: `Bearer ${this.#fx.tokens.hot}` } });
    if (r.status !== 200) {
      problems.push(`sanity: allowed request answered ${r.status}`);
      await r.arrayBuffer();
      return problems;
    }
    const raw = (await r.json()) as string[];
    const headers = new Map<string, string>();
    for (let i = 0; i < raw.length; i += 2) headers.set(raw[i]!.toLowerCase(), raw[i + 1]!);
    if (headers.get('x-jit-subject') !== SUBJECT) problems.push('sanity: upstream did not get x-jit-subject');
    if (headers.has('authorization')) problems.push('sanity: upstream got the Authorization header');
    return problems;
  }
}

/** `name{labels} value` lines of the admin /metrics text, for the counters the bench checks. */
export async function scrapeMetrics(adminPort: number): Promise<MetricSnapshot> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('jitgate_token_cache_') && !line.startsWith('jitgate_decisions_total') && !line.startsWith('jitgate_nodejs_heap_size_used_bytes')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

export function cacheDelta(before: MetricSnapshot, after: MetricSnapshot): { hits: number; misses: number } {
  const d = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
  return { hits: d('jitgate_token_cache_hits_total'), misses: d('jitgate_token_cache_misses_total') };
}

/** jitgate_decisions_total deltas by reason (summed over transports), non-zero only. */
export function reasonDelta(before: MetricSnapshot, after: MetricSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    if (!k.startsWith('jitgate_decisions_total')) continue;
    const d = v - (before.get(k) ?? 0);
    if (d === 0) continue;
    const reason = /reason="([^"]*)"/.exec(k)?.[1] ?? '?';
    out[reason] = (out[reason] ?? 0) + d;
  }
  return out;
}
