/**
 * The primary's workers, one per slot. A slot outlives its worker: a worker that dies while serving
 * is replaced in the same slot, so /readyz keeps asking about N workers and the replacement gets
 * the same JITGATE_WORKER_SLOT.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { StartupError } from '../errors.ts';
import { AUDIT_RUN_ENV } from '../observability/audit-chain-start.ts';
import { NONCE_KEY_ENV, type FromWorker, type ToWorker } from './messages.ts';

const RESTART_DELAY_MS = 1000;

/** The forked workers by slot (1..N); one that dies while serving is replaced in its slot. */
export class WorkerSlots {
  readonly #slots = new Map<number, Worker>();
  readonly #count: number;
  readonly #nonceKey: string;
  /** This primary's run, for the workers' audit chains (AUDIT_RUN_ENV). */
  readonly #auditRun: string;
  readonly #log: Logger;
  /**
   * Workers forked and not yet started, with what the primary asked of them meanwhile. A worker still
   * loading has no message listener, and node drops what arrives before one: a replacement forked just
   * before a SIGHUP kept a key removed from its jwks_file accepted for good, and one forked just before
   * SIGTERM served on until it was killed (a black-box probe). Sent once it says it started.
   */
  readonly #early = new Map<Worker, ToWorker[]>();
  /** Once set, nothing is restarted and /readyz says the cluster is draining. */
  draining = false;

  constructor(count: number, nonceKey: string, log: Logger) {
    this.#count = count;
    this.#nonceKey = nonceKey;
    this.#auditRun = `${randomBytes(8).toString('hex')}/${count}`;
    this.#log = log;
  }

  get size(): number {
    return this.#slots.size;
  }

  get(slot: number): Worker | undefined {
    return this.#slots.get(slot);
  }

  all(): IterableIterator<Worker> {
    return this.#slots.values();
  }

  /** Resolves with the first worker's proxy URL once every worker started; rejects when one cannot. */
  async forkAll(): Promise<string> {
    const [proxy] = (await Promise.all(Array.from({ length: this.#count }, (_, i) => this.#fork(i + 1)))) as [string];
    return proxy;
  }

  /** Startup failed: no worker may be restarted or left running. */
  abort(): void {
    this.draining = true;
    this.kill();
  }

  /** Sends `msg` to a worker that has started; one still starting gets it once it has (#early). */
  tell(worker: Worker, msg: ToWorker): void {
    const queued = this.#early.get(worker);
    if (queued !== undefined) queued.push(msg);
    else if (worker.isConnected()) worker.send(msg);
  }

  /** The slot a worker serves (log lines name slots, not node's worker ids). */
  slotOf(worker: Worker): number | undefined {
    for (const [slot, w] of this.#slots) if (w === worker) return slot;
    return undefined;
  }

  kill(): void {
    for (const w of this.#slots.values()) w.process.kill('SIGKILL');
  }

  #fork(slot: number): Promise<string> {
    const worker = cluster.fork({ JITGATE_WORKER_SLOT: String(slot), [NONCE_KEY_ENV]: this.#nonceKey, [AUDIT_RUN_ENV]: this.#auditRun });
    this.#slots.set(slot, worker);
    this.#early.set(worker, []);
    // A worker that died (SIGKILL, the OOM killer) looks connected until the primary reads the end of
    // its channel; a message sent to it meanwhile fails with EPIPE, raised as an 'error' on the worker.
    // Unheard, that error ended the primary and so the whole gate (a CI run: a /readyz right after a
    // worker was killed). The exit that follows is what counts: it is logged and the worker replaced.
    worker.on('error', (err: NodeJS.ErrnoException) => this.#log.warn({ worker: slot, worker_pid: worker.process.pid, err: err.code ?? err.message }, 'a message to a worker failed; it is exiting'));
    return new Promise((resolve, reject) => {
      worker.on('message', (msg: FromWorker) => {
        if (msg?.type === 'jitgate:started') {
          const asked = this.#early.get(worker) ?? [];
          this.#early.delete(worker);
          if (asked.length > 0) this.#log.info({ worker: slot, worker_pid: worker.process.pid, asked: asked.map((m) => m.type.slice('jitgate:'.length)) }, 'worker started; sending what was asked of it while it started');
          for (const m of asked) this.tell(worker, m);
          resolve(msg.proxy);
        } else if (msg?.type === 'jitgate:failed') reject(new StartupError(msg.message));
      });
      worker.on('exit', (code, signal) => {
        this.#early.delete(worker);
        reject(new StartupError(`worker ${slot} exited (${signal ?? code}) before it started`));
        if (this.draining || this.#slots.get(slot) !== worker) return;
        this.#log.error({ worker: slot, worker_pid: worker.process.pid, code, signal }, 'worker died; starting a new one');
        setTimeout(() => {
          if (!this.draining) this.#fork(slot).catch((err: Error) => this.#log.error({ worker: slot, err: err.message }, 'replacement worker failed to start'));
        }, RESTART_DELAY_MS).unref();
      });
    });
  }
}
