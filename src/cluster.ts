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
 * - The primary also owns the revocation API and its journal: it replays the file before forking,
 *   appends and fsyncs each POST, then hands the entries to every worker over IPC and answers 201
 *   only when all of them confirmed. A worker (a replacement after a crash too) asks for every
 *   live entry before it serves (src/revocation/journal-follower.ts). `revocation.file` and
 *   `revocation.url` are read by each worker itself.
 *
 * - DPoP: the primary holds the one proof-jti cache, so a proof is single-use across workers
 *   (src/cache/shared-dpop-replay.ts), and makes the nonce key every worker derives nonces from.
 *
 * Shutdown: SIGTERM/SIGINT to the primary asks every worker to drain (IPC, not a signal, so a
 * terminal's Ctrl-C that reached the workers too is not counted twice); the primary exits 0 once
 * all of them exited 0. A second signal kills the workers and exits at once. A worker that dies
 * while serving is replaced.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { gaugeRefresher, withDraining, type AdminSource } from './admin/health.ts';
import { NotEnforcedError, revocationStatus, revocationsRoute, type RevocationStore } from './admin/revocations-api.ts';
import { startAdmin } from './admin/server.ts';
import { chooseRevocationStore } from './admin/revocation-store.ts';
import { openRedisWriter } from './fleet/fleet.ts';
import { logJournalReplay } from './build-gate.ts';
import { DpopReplayCache } from './cache/dpop-replay.ts';
import { answerAnomalyRevoke, PrimaryRevocationWriter, type AnomalyRevokeAnswer, type AnomalyRevokeRequest } from './anomaly/primary-writer.ts';
import { answerReplay, type ReplayAnswer, type ReplayChannel, type ReplayRequest } from './cache/shared-dpop-replay.ts';
import type { Config } from './config/schema.ts';
import { JitgateError, StartupError } from './errors.ts';
import type { Readiness } from './gate.ts';
import type { RevocationEntry } from './revocation/entries.ts';
import type { FollowerRequest, FollowerUpdate, PrimaryChannel } from './revocation/journal-follower.ts';
import { JournalRevocationSource } from './revocation/journal-source.ts';
import { RevocationList } from './revocation/revocation-list.ts';
import { revocationRetainMs } from './revocation/retention.ts';
import { onReloadSignal } from './reload.ts';
import { listenUrl, onShutdownSignals, startJitgateWorker, type WorkerRunning } from './runtime.ts';
import type { HttpListener } from './transports/http-listener.ts';

export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** Primary ↔ worker messages (the journal's are in journal-follower.ts). */
type ToWorker = { type: 'jitgate:drain'; graceMs: number } | { type: 'jitgate:readiness'; id: number } | { type: 'jitgate:reload' } | FollowerUpdate | ReplayAnswer | AnomalyRevokeAnswer;
type FromWorker =
  | { type: 'jitgate:started'; proxy: string; extAuthz: string[] }
  | { type: 'jitgate:failed'; message: string }
  | ({ type: 'jitgate:readiness'; id: number } & Readiness)
  | FollowerRequest
  | ReplayRequest
  | AnomalyRevokeRequest;

/** Where a worker finds the DPoP nonce key the primary made (every worker must derive the same nonces). */
const NONCE_KEY_ENV = 'JITGATE_DPOP_NONCE_KEY';

const READINESS_TIMEOUT_MS = 2000;
/** How long a POST /revocations waits for every worker to confirm the entries. */
const REVOKE_ACK_TIMEOUT_MS = 5000;
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

  const journal = config.revocation.journal === undefined ? undefined : await primaryJournal(config.revocation.journal, log, revocationRetainMs(config));
  /** Workers holding the journal's entries (they asked for them), and the batches they have yet to confirm. */
  const followers = new Set<Worker>();
  let revokeId = 0;
  const acks = new Map<number, (worker: Worker) => void>();

  // DPoP: one proof-jti cache for all workers, and one nonce key.
  const replay = config.dpop === undefined ? undefined : new DpopReplayCache(config.dpop.replay_cache_entries);
  const nonceKey = randomBytes(32).toString('base64');

  cluster.on('message', (worker, msg: FromWorker) => {
    if (msg?.type === 'jitgate:dpop-add') {
      if (replay !== undefined && worker.isConnected()) worker.send(answerReplay(replay, msg) satisfies ToWorker);
    } else if (msg?.type === 'jitgate:readiness') pending.get(msg.id)?.({ ready: msg.ready, problems: msg.problems });
    else if (msg?.type === 'jitgate:revocations-sync') {
      // In the same tick as the snapshot: every later batch goes to this worker too.
      followers.add(worker);
      worker.send({ type: 'jitgate:revocations-snapshot', entries: journal === undefined ? [] : [...journal.index.entries()] } satisfies ToWorker);
    } else if (msg?.type === 'jitgate:revoke-ack') acks.get(msg.id)?.(worker);
    else if (msg?.type === 'jitgate:anomaly-revoke') {
      // SPEC §12: a worker's anomaly revocation takes the POST /revocations path (journal, then every worker).
      answerAnomalyRevoke(store, msg, (a) => worker.isConnected() && worker.send(a satisfies ToWorker), log);
    }
  });
  cluster.on('exit', (worker) => {
    followers.delete(worker);
    // A worker that exits owes no confirmation: its replacement syncs from the journal.
    for (const settle of acks.values()) settle(worker);
  });

  /** Resolves once every follower confirmed `entries` (one that exits meanwhile counts as done). */
  function broadcast(entries: readonly RevocationEntry[]): Promise<void> {
    const id = ++revokeId;
    const waiting = new Set([...followers].filter((w) => !w.isDead() && w.isConnected()));
    if (waiting.size === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        acks.delete(id);
        if (err) reject(err);
        else resolve();
      };
      const settle = (worker: Worker): void => {
        if (!waiting.delete(worker)) return;
        if (waiting.size === 0) finish();
      };
      const timer = setTimeout(() => finish(new NotEnforcedError(`${waiting.size} worker(s) did not confirm within ${REVOKE_ACK_TIMEOUT_MS / 1000}s`)), REVOKE_ACK_TIMEOUT_MS);
      acks.set(id, settle);
      for (const w of [...waiting]) {
        try {
          w.send({ type: 'jitgate:revoke', id, entries } satisfies ToWorker);
        } catch {
          settle(w); // the channel closed under us: the worker is going away
        }
      }
    });
  }

  const store: RevocationStore = {
    journalFile: journal?.file,
    async append(entries) {
      await journal!.append(entries);
      await broadcast(entries);
      return journal!.index.size;
    },
    status() {
      // revocation.file and .url are each worker's own: their counts and freshness are in /metrics and /readyz.
      return { ...revocationStatus(new RevocationList(journal === undefined ? [] : [journal]), journal, Date.now()), workers: count };
    },
  };

  function fork(slot: number): Promise<string> {
    const worker = cluster.fork({ JITGATE_WORKER_SLOT: String(slot), [NONCE_KEY_ENV]: nonceKey });
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
    journal?.stop();
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
      // A ready worker's problems (a refused reload) are shown but do not make the cluster unready.
      const problems = answers.flatMap((a) => a.problems);
      return withDraining({ ready: answers.every((a) => a.ready), problems }, draining);
    },
    async metrics() {
      return { contentType: aggregator.contentType, text: await aggregator.clusterMetrics() };
    },
  };
  let admin: HttpListener;
  // revocation.redis: the primary writes POSTed entries to Redis too (each worker follows Redis itself).
  let redis: Awaited<ReturnType<typeof openRedisWriter>> | undefined;
  try {
    redis = config.revocation.redis ? await openRedisWriter(config, logger) : undefined;
    admin = await startAdmin({ config, logger, source, revocations: revocationsRoute(chooseRevocationStore(config, store, redis?.writer), config, logger) });
  } catch (err) {
    draining = true;
    for (const w of slots.values()) w.process.kill('SIGKILL');
    journal?.stop();
    redis?.stop();
    throw err;
  }

  // SIGHUP (e.g. systemd ExecReload to the primary): every worker re-reads its files (src/reload.ts).
  onReloadSignal(async () => {
    for (const w of slots.values()) if (w.isConnected()) w.send({ type: 'jitgate:reload' } satisfies ToWorker);
  }, log);

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
          journal?.stop();
          redis?.stop();
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

/** The replayed journal the primary serves to its workers; its replay is logged like a single gate's. */
async function primaryJournal(file: string, log: Logger, retainMs: number): Promise<JournalRevocationSource> {
  const journal = new JournalRevocationSource(file, { retainMs, onReplay: (i) => logJournalReplay(log, i) });
  await journal.start();
  return journal;
}

/** The worker's side of the IPC channel, as the journal follower and the DPoP replay guard use it. */
const toPrimary: PrimaryChannel & ReplayChannel = {
  send: (m) => void process.send!(m),
  on: (event, listener) => process.on(event, listener),
  off: (event, listener) => process.off(event, listener),
};

/** A forked worker: the gate without the admin listener, answering the primary over IPC. */
export async function runWorker(config: Config, file: string): Promise<number> {
  let running: WorkerRunning;
  try {
    const nonceKey = process.env[NONCE_KEY_ENV];
    delete process.env[NONCE_KEY_ENV]; // not for anything this worker might start
    running = await startJitgateWorker(config, file, {
      primary: { channel: toPrimary, nonceKey: nonceKey === undefined ? undefined : Buffer.from(nonceKey, 'base64') },
      revocationWriter: config.anomaly === undefined ? undefined : new PrimaryRevocationWriter({ send: (m) => void process.send!(m), on: (e, l) => process.on(e, l) }),
    });
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
    else if (msg?.type === 'jitgate:reload') void r.reload();
  });
  onReloadSignal(() => r.reload(), r.logger);
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([r.metrics.registry]);
  // The primary is gone (killed): nobody will hand out connections or ask for a drain. Node's
  // cluster code would exit this worker at once on an unexpected disconnect, resetting every
  // in-flight request; marking the disconnect as expected lets the drain finish them first.
  cluster.worker?.once('disconnect', () => {
    if (r.draining) return; // our own disconnect after a drain: exiting is right
    cluster.worker!.exitedAfterDisconnect = true;
    r.logger.warn('cluster primary gone; draining this worker');
    drain();
  });
  onShutdownSignals(
    () => drain(),
    (_signal, exitCode) => r.logger.flush(() => process.exit(exitCode)),
  );
  process.send!({
    type: 'jitgate:started',
    proxy: listenUrl(r.listeners.proxy, r.config.listen.tls ? 'https' : 'http'),
    extAuthz: r.listeners.extAuthz.map((l) => listenUrl(l)),
  } satisfies FromWorker);
  return done;
}
