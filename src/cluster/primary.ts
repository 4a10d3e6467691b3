/**
 * The cluster primary (src/cluster.ts says what it owns and why). startPrimary reads as the order
 * its steps must run in; each step keeps to one job and holds only the state that job needs
 * (the workers in worker-slots.ts, the journal's fan-out in revocations.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { withDraining, type AdminSource } from '../admin/health.ts';
import { revocationsRoute, type RevocationStore } from '../admin/revocations-api.ts';
import { startAdmin } from '../admin/server.ts';
import { chooseRevocationStore } from '../admin/revocation-store.ts';
import type { openRedisWriter } from '../fleet/fleet.ts';
import { DpopReplayCache } from '../cache/dpop-replay.ts';
import { answerAnomalyCount } from '../anomaly/primary-counter.ts';
import { answerAnomalyRevoke } from '../anomaly/primary-writer.ts';
import { countsInRedis, RefusalCounter } from '../anomaly/refusal-counter.ts';
import { flushWithin, SECOND_SIGNAL_FLUSH_MS } from '../observability/logger.ts';
import { ProblemBoard } from '../observability/problem-board.ts';
import { answerReplay } from '../cache/shared-dpop-replay.ts';
import type { Config } from '../config/schema.ts';
import type { Readiness } from '../gate.ts';
import { revocationRetainMs } from '../revocation/retention.ts';
import { onReloadSignal } from '../reload.ts';
import { onLogReopen, reopenOwnLog } from '../process-signals.ts';
import { onShutdownSignals } from '../runtime.ts';
import { listenAddresses } from '../config/listen-addresses.ts';
import { assertCanListen } from '../transports/http-listener.ts';
import type { HttpListener } from '../transports/http-listener.ts';
import { ClusterMetrics } from './cluster-metrics.ts';
import type { FromWorker, ToWorker } from './messages.ts';
import { journalStore, primaryJournal, RevocationFanOut } from './revocations.ts';
import { WorkerSlots } from './worker-slots.ts';

/** How long the primary waits for a worker's readiness or metrics (well inside Prometheus's 10 s scrape timeout). */
const READINESS_TIMEOUT_MS = 2000;
const KILL_AFTER_GRACE_MS = 5000;

export interface Primary {
  readonly proxy: string;
  readonly admin: HttpListener;
  /** Resolves with the process exit code once every worker is gone. */
  readonly done: Promise<number>;
}

type RedisWriter = Awaited<ReturnType<typeof openRedisWriter>>;

/** Forks the workers and starts the admin listener; throws StartupError when a worker cannot start. */
export async function startPrimary(config: Config, count: number, logger: Logger): Promise<Primary> {
  // Before any worker continues its chain in the audit file (runtime.ts says why).
  if (config.log.audit_chain) await assertCanListen(listenAddresses(config));
  const log = logger.child({ component: 'cluster' });
  const metrics = new ClusterMetrics(READINESS_TIMEOUT_MS);
  const journal = config.revocation.journal === undefined ? undefined : await primaryJournal(config.revocation.journal, log, revocationRetainMs(config));
  const fanOut = new RevocationFanOut(journal);
  const readiness = new ReadinessQueries();
  // DPoP: one proof-jti cache for all workers, and one nonce key.
  const replay = config.dpop === undefined ? undefined : new DpopReplayCache(config.dpop.replay_cache_entries);
  const workers = new WorkerSlots(count, randomBytes(32).toString('base64'), log);
  // revocation.redis: the primary writes POSTed entries to Redis too (each worker follows Redis
  // itself). Opened before the workers, so the store a worker's anomaly revocation goes through is
  // the one POST /revocations uses from the first message on.
  const redis = await openPrimaryRedis(config, logger, () => journal?.stop());
  const store = chooseRevocationStore(config, journalStore(journal, fanOut, count, redis?.writer), redis?.writer);
  // SPEC §12: one refusal count per token for the whole host, whichever worker refused it.
  const a = config.anomaly;
  // Workers that count in Redis never ask the primary to count.
  const counter = a === undefined || countsInRedis(config) ? undefined : new RefusalCounter(a.deny_threshold, a.window, a.max_tracked);
  routeClusterEvents({ replay, readiness, metrics, fanOut, store, counter, log });

  const abort = (): void => {
    workers.abort();
    journal?.stop();
    redis?.stop();
  };
  const proxy = await startWorkers(workers, abort);
  // The primary's own: its Redis writer, and a refused admin.tls reload (its listener is the primary's).
  const degraded = new ProblemBoard();
  const source = clusterAdminSource(workers, readiness, metrics, count, () => [...(redis?.problems() ?? []), ...degraded.list()]);
  const admin = await startAdminListener(config, logger, source, store, degraded, metrics, abort);
  forwardReload(workers, log);
  const done = drainOnSignal(workers, config.shutdown.grace, log, logger, async () => {
    await admin.close(500);
    journal?.stop();
    redis?.stop();
  });
  return { proxy, admin, done };
}

/** Readiness questions in flight; the answers arrive through the cluster's message event. */
class ReadinessQueries {
  readonly #pending = new Map<number, (r: Readiness) => void>();
  #lastId = 0;

  /** One worker's readiness over IPC; a worker that is gone, exits meanwhile or stays silent is not ready. */
  ask(slot: number, worker: Worker | undefined): Promise<Readiness> {
    if (worker === undefined || worker.isDead() || !worker.isConnected()) return Promise.resolve({ ready: false, problems: [`worker ${slot}: not running`] });
    const id = ++this.#lastId;
    return new Promise((resolve) => {
      const done = (r: Readiness): void => {
        clearTimeout(timer);
        worker.off('exit', onExit);
        this.#pending.delete(id);
        resolve({ ready: r.ready, problems: r.problems.map((p) => `worker ${slot}: ${p}`) });
      };
      const onExit = (): void => done({ ready: false, problems: ['not running'] });
      const timer = setTimeout(() => done({ ready: false, problems: ['no answer'] }), READINESS_TIMEOUT_MS);
      worker.once('exit', onExit);
      this.#pending.set(id, done);
      worker.send({ type: 'jitgate:readiness', id } satisfies ToWorker);
    });
  }

  answer(id: number, r: Readiness): void {
    this.#pending.get(id)?.({ ready: r.ready, problems: r.problems });
  }
}

/** Routes what any worker asks of the primary to the step that owns it. */
function routeClusterEvents(to: {
  replay: DpopReplayCache | undefined;
  readiness: ReadinessQueries;
  metrics: ClusterMetrics;
  fanOut: RevocationFanOut;
  store: RevocationStore;
  counter: RefusalCounter | undefined;
  log: Logger;
}): void {
  cluster.on('message', (worker, msg: FromWorker) => {
    if (msg?.type === 'jitgate:dpop-add') {
      if (to.replay !== undefined && worker.isConnected()) worker.send(answerReplay(to.replay, msg) satisfies ToWorker);
    } else if (msg?.type === 'jitgate:readiness') to.readiness.answer(msg.id, msg);
    else if (msg?.type === 'jitgate:metrics') to.metrics.answer(msg);
    else if (msg?.type === 'jitgate:revocations-sync') to.fanOut.follow(worker);
    else if (msg?.type === 'jitgate:revoke-ack') to.fanOut.confirmed(worker, msg.id);
    else if (msg?.type === 'jitgate:anomaly-revoke') {
      // SPEC §12: a worker's anomaly revocation takes the POST /revocations path (journal, then every worker).
      answerAnomalyRevoke(to.store, msg, (a) => worker.isConnected() && worker.send(a satisfies ToWorker), to.log);
    } else if (msg?.type === 'jitgate:anomaly-count') {
      if (to.counter !== undefined && worker.isConnected()) worker.send(answerAnomalyCount(to.counter, msg) satisfies ToWorker);
    } else if (msg?.type === 'jitgate:anomaly-rearm') to.counter?.rearm(msg.key);
  });
  cluster.on('exit', (worker) => {
    to.fanOut.gone(worker);
    to.metrics.gone(worker);
  });
}

/** Forks every worker; a failed start must not leave workers or the journal behind the error. */
async function startWorkers(workers: WorkerSlots, abort: () => void): Promise<string> {
  try {
    return await workers.forkAll();
  } catch (err) {
    abort();
    throw err;
  }
}

/**
 * One admin port for the whole cluster: readiness of every worker, metrics summed over them
 * (cluster-metrics.ts: counters never go down; `jitgate_ready` is what /readyz says).
 */
function clusterAdminSource(workers: WorkerSlots, readiness: ReadinessQueries, metrics: ClusterMetrics, count: number, primaryProblems: () => string[]): AdminSource {
  const slots = (): number[] => Array.from({ length: count }, (_, i) => i + 1);
  const source: AdminSource = {
    async readiness() {
      const answers = await Promise.all(slots().map((i) => readiness.ask(i, workers.get(i))));
      // A ready worker's problems (a refused reload) and the primary's lost writer are shown but do not make the cluster unready.
      const problems = [...primaryProblems(), ...answers.flatMap((a) => a.problems)];
      return withDraining({ ready: answers.every((a) => a.ready), problems }, workers.draining);
    },
    async metrics() {
      return metrics.collect(
        slots().map((i) => workers.get(i)),
        source.readiness().then((r) => r.ready),
      );
    },
  };
  return source;
}

/** The Redis writer when revocation.redis is set; on failure `abort` runs before the error is thrown. */
async function openPrimaryRedis(config: Config, logger: Logger, abort: () => void): Promise<RedisWriter | undefined> {
  if (!config.revocation.redis) return undefined;
  try {
    // The Redis client is loaded only when Redis is configured.
    return await (await import('../fleet/fleet.ts')).openRedisWriter(config, logger);
  } catch (err) {
    abort();
    throw err;
  }
}

/** The admin listener; on failure everything started so far is stopped. */
async function startAdminListener(config: Config, logger: Logger, source: AdminSource, store: RevocationStore, problems: ProblemBoard, metrics: ClusterMetrics, abort: () => void): Promise<HttpListener> {
  try {
    return await startAdmin({ config, logger, source, revocations: revocationsRoute(store, config, logger), problems, metrics: metrics.tls });
  } catch (err) {
    abort();
    throw err;
  }
}

/**
 * SIGHUP (e.g. systemd ExecReload to the primary): every worker re-reads its files (src/reload.ts).
 * SIGUSR1 (logrotate's postrotate): the primary and every worker open the log file again.
 */
function forwardReload(workers: WorkerSlots, log: Logger): void {
  onReloadSignal(async () => {
    for (const w of workers.all()) workers.tell(w, { type: 'jitgate:reload' });
  }, log);
  onLogReopen(log, () => {
    reopenOwnLog(log);
    for (const w of workers.all()) workers.tell(w, { type: 'jitgate:reopen-log' });
  });
}

/**
 * SIGTERM/SIGINT: every worker drains (asked over IPC), then `closeRest` runs; resolves with 0 only
 * if all of them exited 0. A second signal kills the workers and exits at once.
 */
function drainOnSignal(workers: WorkerSlots, graceMs: number, log: Logger, logger: Logger, closeRest: () => Promise<void>): Promise<number> {
  return new Promise<number>((resolve) => {
    onShutdownSignals(
      (signal) => {
        workers.draining = true;
        log.info({ signal, workers: workers.size }, 'shutdown requested; draining workers');
        const exits = [...workers.all()].map(
          (w) =>
            new Promise<number>((r) => {
              // Died before the drain (logged then at error) and waiting out the restart delay: nothing to drain.
              // Counted unclean, a crash up to a second before a stop failed the unit, where one replaced did not.
              if (w.isDead()) return r(0);
              w.once('exit', (code, signal) => {
                // Named, so the exit status 1 it causes has its reason in the log (a re-probe saw only codes:[1,0]).
                if (code !== 0) log.warn({ worker: workers.slotOf(w), worker_pid: w.process.pid, code, signal }, 'worker did not finish its drain cleanly');
                r(code ?? 1);
              });
              workers.tell(w, { type: 'jitgate:drain', graceMs });
            }),
        );
        // A worker that outlives its own grace is stuck; do not let it hold the rollout.
        const killer = setTimeout(() => {
          for (const w of workers.all()) {
            if (w.isDead()) continue;
            log.warn({ worker: workers.slotOf(w), worker_pid: w.process.pid, waited_ms: graceMs + KILL_AFTER_GRACE_MS }, 'worker did not stop within shutdown.grace + 5 s; killed (SIGKILL), the exit code will be 1');
            w.process.kill('SIGKILL');
          }
        }, graceMs + KILL_AFTER_GRACE_MS);
        void Promise.all(exits).then(async (codes) => {
          clearTimeout(killer);
          await closeRest();
          if (codes.every((c) => c === 0)) log.info({ codes }, 'all workers stopped');
          else log.warn({ codes }, 'all workers stopped; not every one cleanly, so the exit code is 1');
          void flushWithin(logger).then(() => resolve(codes.every((c) => c === 0) ? 0 : 1));
        });
      },
      (signal, exitCode) => {
        workers.kill();
        log.warn({ signal }, 'second signal: workers killed, exiting now');
        void flushWithin(logger, SECOND_SIGNAL_FLUSH_MS).then(() => process.exit(exitCode));
      },
    );
  });
}
