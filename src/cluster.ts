/**
 * `workers: N | auto` (N > 1): a node:cluster primary forks N workers that share the traffic port
 * (the primary accepts and hands connections out round-robin). `workers: 1` runs no cluster at all.
 *
 * Who owns what:
 * - Each worker runs the whole gate (keys, revocation sources, token cache, proxy, ext_authz) —
 *   decisions never cross a process boundary.
 * - The primary owns the admin listener, so there is one admin port and it tells the truth about
 *   all workers: `/metrics` is prom-client's AggregatorRegistry over every worker's registry
 *   (counters summed; gauges by their declared aggregator; the primary's own process is not
 *   included), `/readyz` is ready only when every worker is running and ready.
 * - The revocation API and its journal are refused with workers > 1: each worker holds its own
 *   revocation index, so an entry POSTed to one would not bind the others, and N workers would
 *   replay and compact one journal file at once. Use `revocation.file` / `revocation.url`.
 *
 * Shutdown: SIGTERM/SIGINT to the primary asks every worker to drain (IPC, not a signal, so a
 * terminal's Ctrl-C that reached the workers too is not counted twice); the primary exits 0 once
 * all of them exited 0. A second signal kills the workers and exits at once. A worker that dies
 * while serving is replaced.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { gaugeRefresher, withDraining, type AdminSource } from './admin/health.ts';
import { startAdmin } from './admin/server.ts';
import type { Config } from './config/schema.ts';
import { JitgateError, StartupError } from './errors.ts';
import type { Readiness } from './gate.ts';
import { listenUrl, onShutdownSignals, startJitgateWorker, type WorkerRunning } from './runtime.ts';
import type { HttpListener } from './transports/http-listener.ts';

export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** Config combinations cluster mode cannot honour (see the module comment), as key-path lines. */
export function clusterConfigProblems(config: Config): string[] {
  if (workerCount(config.workers) <= 1) return [];
  const why = 'not supported with workers > 1 (each worker keeps its own revocation index); use revocation.file or revocation.url, or workers: 1';
  const out: string[] = [];
  if (config.admin.token_file !== undefined) out.push(`admin.token_file: the revocation API is ${why}`);
  if (config.revocation.journal !== undefined) out.push(`revocation.journal: ${why}`);
  return out;
}

/** Primary ↔ worker messages. */
type ToWorker = { type: 'jitgate:drain'; graceMs: number } | { type: 'jitgate:readiness'; id: number };
type FromWorker =
  | { type: 'jitgate:started'; proxy: string; extAuthz: string[] }
  | { type: 'jitgate:failed'; message: string }
  | ({ type: 'jitgate:readiness'; id: number } & Readiness);

const READINESS_TIMEOUT_MS = 2000;
const RESTART_DELAY_MS = 1000;
const KILL_AFTER_GRACE_MS = 5000;

export interface Primary {
  readonly proxy: string;
  readonly admin: HttpListener;
  /** Resolves with the process exit code once every worker is gone. */
  readonly done: Promise<number>;
}

/** Forks the workers and starts the admin listener; throws StartupError when a worker cannot start. */
export async function startPrimary(config: Config, count: number, logger: Logger): Promise<Primary> {
  const log = logger.child({ component: 'cluster' });
  const slots = new Map<number, Worker>(); // slot 1..N → current worker
  const aggregator = new AggregatorRegistry();
  let draining = false;
  let readinessId = 0;
  const pending = new Map<number, (r: Readiness) => void>();

  cluster.on('message', (_worker, msg: FromWorker) => {
    if (msg?.type === 'jitgate:readiness') pending.get(msg.id)?.({ ready: msg.ready, problems: msg.problems });
  });

  function fork(slot: number): Promise<string> {
    const worker = cluster.fork({ JITGATE_WORKER_SLOT: String(slot) });
    slots.set(slot, worker);
    return new Promise((resolve, reject) => {
      worker.on('message', (msg: FromWorker) => {
        if (msg?.type === 'jitgate:started') resolve(msg.proxy);
        else if (msg?.type === 'jitgate:failed') reject(new StartupError(msg.message));
      });
      worker.on('exit', (code, signal) => {
        reject(new StartupError(`worker ${slot} exited (${signal ?? code}) before it started`));
        if (draining || slots.get(slot) !== worker) return;
        log.error({ worker: slot, pid: worker.process.pid, code, signal }, 'worker died; starting a new one');
        setTimeout(() => {
          if (!draining) fork(slot).catch((err: Error) => log.error({ worker: slot, err: err.message }, 'replacement worker failed to start'));
        }, RESTART_DELAY_MS).unref();
      });
    });
  }

  let proxy: string;
  try {
    [proxy] = (await Promise.all(Array.from({ length: count }, (_, i) => fork(i + 1)))) as [string];
  } catch (err) {
    draining = true;
    for (const w of slots.values()) w.process.kill('SIGKILL');
    throw err;
  }

  /** One worker's readiness over IPC; a worker that is gone, exits meanwhile or stays silent is not ready. */
  function ask(slot: number): Promise<Readiness> {
    const worker = slots.get(slot);
    if (worker === undefined || worker.isDead() || !worker.isConnected()) return Promise.resolve({ ready: false, problems: [`worker ${slot}: not running`] });
    const id = ++readinessId;
    return new Promise((resolve) => {
      const done = (r: Readiness): void => {
        clearTimeout(timer);
        worker.off('exit', onExit);
        pending.delete(id);
        resolve({ ready: r.ready, problems: r.problems.map((p) => `worker ${slot}: ${p}`) });
      };
      const onExit = (): void => done({ ready: false, problems: ['not running'] });
      const timer = setTimeout(() => done({ ready: false, problems: ['no answer'] }), READINESS_TIMEOUT_MS);
      worker.once('exit', onExit);
      pending.set(id, done);
      worker.send({ type: 'jitgate:readiness', id } satisfies ToWorker);
    });
  }

  const source: AdminSource = {
    async readiness() {
      const answers = await Promise.all(Array.from({ length: count }, (_, i) => ask(i + 1)));
      const problems = answers.flatMap((a) => (a.ready ? [] : a.problems));
      return withDraining({ ready: problems.length === 0, problems }, draining);
    },
    async metrics() {
      return { contentType: aggregator.contentType, text: await aggregator.clusterMetrics() };
    },
  };
  let admin: HttpListener;
  try {
    admin = await startAdmin({ config, logger, source });
  } catch (err) {
    draining = true;
    for (const w of slots.values()) w.process.kill('SIGKILL');
    throw err;
  }

  const done = new Promise<number>((resolve) => {
    onShutdownSignals(
      (signal) => {
        draining = true;
        log.info({ signal, workers: slots.size }, 'shutdown requested; draining workers');
        const exits = [...slots.values()].map(
          (w) =>
            new Promise<number>((r) => {
              if (w.isDead()) return r(w.process.exitCode ?? 1);
              w.once('exit', (code) => r(code ?? 1));
              if (w.isConnected()) w.send({ type: 'jitgate:drain', graceMs: config.shutdown.grace } satisfies ToWorker);
            }),
        );
        // A worker that outlives its own grace is stuck; do not let it hold the rollout.
        const killer = setTimeout(() => {
          for (const w of slots.values()) if (!w.isDead()) w.process.kill('SIGKILL');
        }, config.shutdown.grace + KILL_AFTER_GRACE_MS);
        void Promise.all(exits).then(async (codes) => {
          clearTimeout(killer);
          await admin.close(500);
          log.info({ codes }, 'all workers stopped');
          logger.flush(() => resolve(codes.every((c) => c === 0) ? 0 : 1));
        });
      },
      (signal, exitCode) => {
        for (const w of slots.values()) w.process.kill('SIGKILL');
        log.warn({ signal }, 'second signal: workers killed, exiting now');
        logger.flush(() => process.exit(exitCode));
      },
    );
  });
  return { proxy, admin, done };
}

/** A forked worker: the gate without the admin listener, answering the primary over IPC. */
export async function runWorker(config: Config, file: string): Promise<number> {
  let running: WorkerRunning;
  try {
    running = await startJitgateWorker(config, file);
  } catch (err) {
    if (!(err instanceof JitgateError)) throw err;
    process.send!({ type: 'jitgate:failed', message: err.message } satisfies FromWorker);
    return 1;
  }
  const r = running;
  const refresh = gaugeRefresher(r.gate, r.metrics);
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  const drain = (graceMs?: number): void =>
    void r.close(graceMs).then(() => {
      // The IPC channel would keep the event loop (and so the worker) alive.
      if (process.connected) process.disconnect();
      resolveDone(0);
    });

  // Registered before prom-client's own listener (added by `new AggregatorRegistry()` below), so
  // the state gauges are current when it collects this worker's registry.
  process.on('message', (msg: ToWorker | { type: 'prom-client:getMetricsReq' }) => {
    if (msg?.type === 'prom-client:getMetricsReq') refresh(r.draining);
    else if (msg?.type === 'jitgate:readiness') {
      process.send!({ type: 'jitgate:readiness', id: msg.id, ...withDraining(r.gate.readiness(), r.draining) } satisfies FromWorker);
    } else if (msg?.type === 'jitgate:drain') drain(msg.graceMs);
  });
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([r.metrics.registry]);
  // The primary is gone (killed): nobody will hand out connections or ask for a drain.
  process.on('disconnect', () => drain());
  onShutdownSignals(
    () => drain(),
    (_signal, exitCode) => r.logger.flush(() => process.exit(exitCode)),
  );
  process.send!({
    type: 'jitgate:started',
    proxy: listenUrl(r.listeners.proxy),
    extAuthz: r.listeners.extAuthz.map((l) => listenUrl(l)),
  } satisfies FromWorker);
  return done;
}
