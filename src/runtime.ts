/**
 * One running jitgate process: config → logger, metrics, audit → the Gate → the proxy, admin and
 * ext_authz listeners. `close` is the graceful drain SIGTERM triggers (src/cli/serve.ts).
 *
 * Order matters both ways. Start: the gate loads keys and revocation before any listener accepts,
 * so the first request is judged on real data. Stop: traffic listeners drain first while the admin
 * listener keeps answering (/readyz says "shutting down"), then the gate's timers stop.
 */
import type { Logger } from 'pino';
import { createRevocationsApi, gateRevocationStore } from './admin/revocations-api.ts';
import { chooseRevocationStore, NO_LOCAL_STORE } from './admin/revocation-store.ts';
import { localAdminSource } from './admin/health.ts';
import { startAdmin } from './admin/server.ts';
import { buildGate, type WorkerLink } from './build-gate.ts';
import type { Clock } from './core/clock.ts';
import type { Config } from './config/schema.ts';
import type { Gate } from './gate.ts';
import type { RevocationWriter } from './anomaly/anomaly-watch.ts';
import type { RefusalCounting } from './anomaly/refusal-counter.ts';
import { checkSection12 } from './anomaly/config-check.ts';
import { watchAnomalies } from './anomaly/wiring.ts';
import { AuditLog } from './observability/audit.ts';
import { AUDIT_RUN_ENV, startAuditChain, workerChain } from './observability/audit-chain-start.ts';
import { createLogger, flushWithin } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';
import type { DecisionTracer } from './observability/trace-hooks.ts';
import type { Listener, TransportContext } from './transports/context.ts';
import { startExtAuthz } from './transports/ext-authz/index.ts';
import { assertCanListen, type HttpListener } from './transports/http-listener.ts';
import { listenAddresses } from './config/listen-addresses.ts';
import { startProxy, type ProxyListener } from './transports/proxy/server.ts';
import { reloadFiles } from './reload.ts';
import { shutdownHandled } from './process-signals.ts';

export interface StartOptions {
  /** Defaults to a logger built from `config.log`. Tests pass one that records lines. */
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Node process metrics in the registry (default true). */
  readonly defaultMetrics?: boolean;
  /** Set in a cluster worker: its link to the primary (build-gate.ts WorkerLink). */
  readonly primary?: WorkerLink;
  /** Set in a cluster worker: anomaly revocations go to the primary, which owns the journal (src/anomaly/primary-writer.ts). */
  readonly revocationWriter?: RevocationWriter;
  /** Set in a cluster worker: refusals are counted at the primary, once for every worker (src/anomaly/primary-counter.ts). */
  readonly refusalCounter?: RefusalCounting;
}

/** A cluster worker's runtime: no admin listener, the primary owns it (src/cluster.ts). */
export interface WorkerRunning {
  readonly config: Config;
  readonly gate: Gate;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly listeners: { readonly proxy: ProxyListener; readonly extAuthz: readonly Listener[] };
  /** True once close() was called. */
  readonly draining: boolean;
  /** Graceful drain: in-flight requests get up to graceMs (default `shutdown.grace`). Idempotent. */
  close(graceMs?: number): Promise<void>;
  /** SIGHUP: re-reads key files and revocation sources (src/reload.ts); true when all loaded. */
  reload(): Promise<boolean>;
}

export interface Running extends WorkerRunning {
  readonly listeners: { readonly proxy: ProxyListener; readonly admin: HttpListener; readonly extAuthz: readonly Listener[] };
}

/** pino's stdout destination buffers 4 KiB; a quiet gate's audit lines should still show up. */
export const LOG_FLUSH_MS = 1000;

/** Starts everything; throws StartupError/ConfigError (with what was started closed again). */
export async function startJitgate(config: Config, file: string, options: StartOptions = {}): Promise<Running> {
  return (await start(config, file, options, true)) as Running;
}

/**
 * The same without the admin listener: a cluster worker (the primary owns it), or a second gate in a process whose
 * first one has it (`jitgate demo`'s mTLS gate). Two runtimes in one process share no mutable state: each has its
 * own metrics registry, caches and timers, and neither installs signal handlers (the caller does, once).
 */
export function startJitgateWorker(config: Config, file: string, options: StartOptions = {}): Promise<WorkerRunning> {
  return start(config, file, options, false);
}

async function start(config: Config, file: string, options: StartOptions, withAdmin: boolean): Promise<WorkerRunning | Running> {
  checkSection12(config, file);
  const logger = options.logger ?? createLogger(config.log);
  const metrics = new Metrics({ defaultMetrics: options.defaultMetrics });
  const audit = new AuditLog(config.log.audit ? logger : undefined);
  const gate = await buildGate(config, file, { metrics, logger, clock: options.clock, primary: options.primary });
  const started: Listener[] = [];
  let closing: Promise<void> | undefined;
  const isDraining = (): boolean => closing !== undefined;
  let proxy: ProxyListener;
  let admin: HttpListener | null = null;
  let extAuthz: Listener[];
  // Loaded only when configured: without `tracing` no OpenTelemetry package is imported.
  let tracer: DecisionTracer | undefined;
  try {
    // First, so the chain's first line (and a newline ending a torn last line) precedes any other;
    // but only once the listeners could bind: a second gate on the same config must fail before it
    // writes into the running one's audit file. (A cluster's primary asks before it forks: a probe in a
    // worker would join the shared port's round robin and could be handed a live connection.)
    if (config.log.audit_chain && options.primary === undefined) await assertCanListen(listenAddresses(config, withAdmin));
    await startAuditChain(config, audit, metrics, options.primary === undefined ? undefined : workerChain(process.env.JITGATE_WORKER_SLOT, process.env[AUDIT_RUN_ENV]));
    await gate.start();
    if (config.tracing !== undefined) tracer = (await import('./observability/tracing.ts')).startTracing(config.tracing, logger);
    // A cluster worker's journal belongs to the primary; with revocation.redis it writes to Redis itself.
    const local = options.primary === undefined ? gateRevocationStore(gate) : NO_LOCAL_STORE;
    const revocations = chooseRevocationStore(config, local, gate.fleet?.writer);
    const ctx: TransportContext = { config, gate, metrics, audit, logger, tracer, revocations };
    // Anomaly revocations go where the admin API's go. A cluster worker with a journal asks the
    // primary, which owns it and appends through the store POST /revocations uses (journal, every
    // worker, then Redis when configured): written to Redis alone, they would be lost with Redis's
    // data, as a single gate's are not. With Redis and no journal the worker writes to Redis itself.
    const viaPrimary = !config.revocation.redis || config.revocation.journal !== undefined;
    const anomalyWriter = (viaPrimary ? options.revocationWriter : undefined) ?? revocations;
    watchAnomalies({ config, gate, audit, metrics, logger, clock: options.clock }, anomalyWriter, options.refusalCounter);
    proxy = await startProxy(ctx);
    started.push(proxy);
    if (withAdmin) {
      admin = await startAdmin({ config, logger, source: localAdminSource(gate, metrics, isDraining), revocations: createRevocationsApi(ctx), problems: gate.degraded, metrics });
      started.push(admin);
    }
    extAuthz = await startExtAuthz(ctx);
  } catch (err) {
    await Promise.all(started.map((l) => l.close(0)));
    gate.stop();
    audit.closeChain();
    await tracer?.shutdown();
    throw err;
  }
  const flusher = setInterval(() => logger.flush(), LOG_FLUSH_MS);
  flusher.unref();

  async function drain(graceMs: number): Promise<void> {
    logger.info({ grace_ms: graceMs }, 'draining: no new connections, finishing in-flight requests');
    await Promise.all([proxy.close(graceMs), ...extAuthz.map((l) => l.close(graceMs))]);
    gate.stop();
    await tracer?.shutdown(); // the spans of the drained requests, bounded by tracing.export_timeout
    await admin?.close(Math.min(graceMs, 1000));
    audit.closeChain(); // SPEC §12: a gracefully closed audit file ends with a signed checkpoint
    clearInterval(flusher);
    logger.info('stopped');
    await flushWithin(logger);
  }

  return {
    config,
    gate,
    metrics,
    logger,
    // A worker's listeners simply lack `admin`; startJitgate (withAdmin) always has one.
    listeners: (admin === null ? { proxy, extAuthz } : { proxy, admin, extAuthz }) as Running['listeners'],
    get draining() {
      return isDraining();
    },
    close(graceMs = config.shutdown.grace) {
      closing ??= drain(graceMs);
      return closing;
    },
    reload: () => reloadFiles(gate, metrics, logger),
  };
}

/** `http://host:port` for the startup line; IPv6 hosts in brackets. */
export function listenUrl(l: Listener, scheme = 'http'): string {
  return `${scheme}://${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`;
}

const SIGNAL_EXIT: ReadonlyMap<string, number> = new Map([
  ['SIGINT', 130],
  ['SIGTERM', 143],
]);

/**
 * SIGTERM/SIGINT handling shared by the single process, the cluster primary and its workers: the
 * first signal calls `drain`, a second one calls `now` with the conventional exit code 128+n
 * (an operator pressing Ctrl-C twice wants out, not a longer wait).
 */
export function onShutdownSignals(drain: (signal: NodeJS.Signals) => void, now: (signal: NodeJS.Signals, exitCode: number) => void): void {
  let seen = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (seen) now(signal, SIGNAL_EXIT.get(signal) ?? 1);
    else {
      seen = true;
      drain(signal);
    }
  };
  shutdownHandled();
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
