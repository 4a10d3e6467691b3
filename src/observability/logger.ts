/**
 * pino loggers. Operational logs and audit lines share one asynchronous destination so neither
 * blocks the event loop; `authorization`, `dpop` and `token` are redacted wherever they appear,
 * as a second line of defence — nothing logs them on purpose.
 */
import { constants, fsyncSync, openSync, statSync, type Stats } from 'node:fs';
import { StartupError } from '../errors.ts';
import pino, { type DestinationStream, type Logger } from 'pino';

export interface LogOptions {
  readonly level: string;
  /** `stdout`, `stderr` or a file path. */
  readonly destination: string;
}

/** Paths pino censors in every line; the audit line derives its own list from this one (audit.ts). */
export const REDACT: readonly string[] = [
  'authorization',
  'dpop',
  'token',
  'headers.authorization',
  'headers.dpop',
  'req.headers.authorization',
  'req.headers.dpop',
  '*.authorization',
  '*.token',
];

export const REDACT_CENSOR = '[redacted]';

/**
 * Bytes that may wait for a slow or stuck destination. Past this, new lines are dropped and counted
 * (`jitgate_log_dropped_lines_total`) instead of buffered without bound: with its stdout pipe
 * unread, a gate at ~13k audit lines/s grew by ~4 MB/s until the kernel would kill it.
 */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;
/**
 * The most one write call takes (SonicBoom's default is 16 KiB; each LineBatch batch of 64 KiB was then one write).
 * One write at a time is under way, and each completion waits for the event loop: a gate busy answering a flood
 * of 401s with 8 KiB paths got about 8 MB/s to a local file and dropped 87,116 of 96,520 lines, allows included
 * (a black-box probe; 10 s, 64 connections). Pending batches coalesced into writes of up to 1 MiB: 69 MB/s, none
 * dropped, in the same run.
 */
const MAX_WRITE_BYTES = 1024 * 1024;

let droppedLines = 0;
let warnedAt = Number.NEGATIVE_INFINITY;

/** Log and audit lines dropped because the destination fell behind by MAX_PENDING_BYTES. */
export function droppedLogLines(): number {
  return droppedLines;
}

/** Counts the lines of `data` as dropped. */
function countDropped(data: string | Buffer): void {
  let lines = 0;
  for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) lines++;
  droppedLines += Math.max(1, lines);
}

function onDrop(data: string | Buffer): void {
  countDropped(data);
  // The logger is what is stuck, so say it on stderr, at most once a minute.
  const now = Date.now();
  if (now - warnedAt >= 60_000) {
    warnedAt = now;
    process.stderr.write(
      `${JSON.stringify({ level: 'warn', time: new Date(now).toISOString(), pid: process.pid, dropped_lines: droppedLines, msg: `the log destination is ${MAX_PENDING_BYTES} bytes behind; dropping lines (jitgate_log_dropped_lines_total)` })}\n`,
    );
  }
}

/** SonicBooms whose last write failed (cleared by the next one that succeeds). */
const failing = new WeakSet<SonicBoom>();
/** SonicBooms whose reader went away (EPIPE): pino turns their writes into no-ops for good. */
const broken = new WeakSet<SonicBoom>();

/**
 * A write error (a full disk, EIO, a pipe's reader gone) said on stderr, once per episode: without
 * this the lines went nowhere with no sign (a probe restarted a FIFO's reader: nothing was logged
 * again, nothing counted). After EPIPE every line is counted as dropped.
 */
function onWriteError(sb: SonicBoom, err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') {
    if (broken.has(sb)) return;
    broken.add(sb);
  } else if (failing.has(sb)) return;
  failing.add(sb);
  const what = err.code === 'EPIPE' ? 'its reader went away (EPIPE); log and audit lines are dropped (jitgate_log_dropped_lines_total) until a named pipe has a reader again' : `a write failed (${err.code ?? err.message}); lines are kept and retried up to ${MAX_PENDING_BYTES} bytes`;
  process.stderr.write(`${JSON.stringify({ level: 'error', time: new Date().toISOString(), pid: process.pid, msg: `the log destination failed: ${what}` })}\n`);
}

function sonic(opts: Parameters<typeof pino.destination>[0] & object): SonicBoom {
  const sb = pino.destination({ ...opts, sync: false, maxLength: MAX_PENDING_BYTES });
  sb.on('drop', onDrop);
  sb.on('error', (err: NodeJS.ErrnoException) => onWriteError(sb, err));
  sb.on('write', () => {
    if (!broken.has(sb)) failing.delete(sb);
  });
  // Given up at shutdown (flushWithin destroys it), a SonicBoom throws on every write, and a line
  // logged after that by a timer or a late request ended the process. Such lines are dropped and
  // counted instead, as LineBatch drops its own; stderr, which has no LineBatch, needed it.
  // (In buffer mode it is handed Buffers, whatever its types say.)
  const write = sb.write.bind(sb) as (data: string | Buffer) => boolean;
  const state = sb as unknown as { destroyed: boolean };
  sb.write = ((data: string | Buffer) => {
    if (!state.destroyed) return write(data);
    countDropped(data);
    return false;
  }) as SonicBoom['write'];
  // SonicBoom's destroy empties its queue but not the queue's length: a write still in flight (a stuck
  // pipe's reader back after flushWithin gave up) then found that length past minLength, took the next
  // buffer of the empty queue and threw (TypeError in mergeBuf; a probe's gate exited 1 after SIGTERM).
  const destroy = sb.destroy.bind(sb);
  sb.destroy = () => {
    (sb as unknown as { _len: number })._len = 0;
    destroy();
  };
  // pino's own exit hook and ours flush synchronously, which on a failing destination never returns.
  const flushSync = sb.flushSync.bind(sb);
  sb.flushSync = () => {
    if (!failing.has(sb)) flushSync();
  };
  return sb;
}

/**
 * How long shutdown waits for the log destination to take what is pending. A destination that
 * stops reading (an unread stdout pipe) would otherwise hold the drain, and then the exit flush,
 * forever: a gate that cannot log must still stop on SIGTERM.
 */
export const FINAL_FLUSH_MS = 2000;

/** A second signal means "now": the flush gets a moment, not the full wait. */
export const SECOND_SIGNAL_FLUSH_MS = 300;

/**
 * Flushes the logger's destination, waiting at most `ms`. Past that the destination is given up:
 * what is still pending is dropped (counted, and said on stderr) and neither our exit hook nor
 * pino's will try a synchronous write to it, which on a stuck pipe never returns.
 */
/** Opens the logger's file destination again (SIGUSR1; LineBatch.reopen), `done` when it is; false when it has none. */
export function reopenDestination(logger: Logger, done: (err?: Error) => void): boolean {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  return stream instanceof LineBatch && stream.reopen(done);
}

export function flushWithin(logger: Logger, ms: number = FINAL_FLUSH_MS): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as { flush?(cb: () => void): void; destroy?(): void; destroyed?: boolean } | undefined;
  if (typeof stream?.flush !== 'function' || stream.destroyed === true) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      giveUp(stream, ms);
      resolve();
    }, ms);
    timer.unref();
    stream.flush!((err?: Error | null) => {
      clearTimeout(timer);
      // A destination that fails (a full disk) would hold the exit flush forever (SonicBoom's sync
      // flush retries every error): given up now, as a stuck one is after `ms`.
      // (SonicBoom passes null when all went well.) Its flush ends with an fsync, which a pipe, a socket
      // or a terminal refuses with EINVAL once everything was written to it: stdout under a supervisor,
      // the usual case, was warned about as lost lines at every shutdown.
      if (err !== undefined && err !== null && !fsyncUnsupported(err)) giveUp(stream, ms, err);
      resolve();
    });
  });
}

/** The flush's closing fsync refused by a destination with nothing to sync (EINVAL; ENOTSUP on some file systems). */
function fsyncUnsupported(err: NodeJS.ErrnoException): boolean {
  return err.syscall === 'fsync' && (err.code === 'EINVAL' || err.code === 'ENOTSUP');
}

function giveUp(stream: { destroy?(): void }, ms: number, err?: NodeJS.ErrnoException): void {
  const why = err === undefined ? `took nothing for ${ms} ms` : `failed (${err.code ?? err.message})`;
  process.stderr.write(`${JSON.stringify({ level: 'warn', time: new Date().toISOString(), pid: process.pid, msg: `the log destination ${why} at shutdown; lines still pending are dropped` })}\n`);
  stream.destroy?.();
}

export function createDestination(destination: string): DestinationStream & { flushSync?: () => void } {
  // minLength stays: with it SonicBoom's flush(cb) waits until what is pending has been written.
  // LineBatch hands over bytes, so its SonicBoom runs in buffer mode.
  if (destination === 'stdout') return new LineBatch(sonic({ fd: 1, minLength: 4096, maxWrite: MAX_WRITE_BYTES, contentMode: 'buffer' }));
  if (destination === 'stderr') return sonic({ fd: 2 });
  const target = fileTarget(destination);
  const open = (t: { dest: string } | { fd: number }): SonicBoom => sonic({ ...t, mkdir: true, minLength: 4096, maxWrite: MAX_WRITE_BYTES, contentMode: 'buffer' });
  // A named pipe whose reader went away (a log shipper restarted) is opened again once a reader is back.
  const reopen =
    'fd' in target
      ? (): SonicBoom | undefined => {
          const fd = fifoWriterFd(destination);
          return fd === undefined ? undefined : open({ fd });
        }
      : undefined;
  return new LineBatch(open(target), reopen, 'dest' in target ? () => open(target) : undefined);
}

/** A write end of the named pipe if a reader has it open now, else undefined (never waits). */
function fifoWriterFd(path: string): number | undefined {
  try {
    return statSync(path).isFIFO() ? openSync(path, constants.O_WRONLY | constants.O_NONBLOCK) : undefined;
  } catch {
    return undefined; // ENXIO: no reader yet; ENOENT: the pipe is being made again
  }
}

/**
 * A path, or for a named pipe an fd opened here. A pipe's open for writing waits until something
 * reads it, on the thread pool's one thread: a gate started before its log shipper hung at start with
 * no output (a probe). Opened non-blocking, it says at once whether a reader is there (ENXIO: none),
 * and the fd is kept, since opening and closing a probe would end a live reader's stream. (SonicBoom
 * retries a full pipe's EAGAIN.)
 */
function fileTarget(destination: string): { dest: string } | { fd: number } {
  let st: Stats;
  try {
    st = statSync(destination);
  } catch {
    return { dest: destination };
  }
  if (!st.isFIFO()) return { dest: destination };
  try {
    return { fd: openSync(destination, constants.O_WRONLY | constants.O_NONBLOCK) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') throw new StartupError(`log.destination: ${destination} is a named pipe that nothing reads yet; start its reader (the log shipper) first`);
    throw err;
  }
}

type SonicBoom = ReturnType<typeof pino.destination>;

/**
 * Lines are handed to the file in chunks of about this many bytes (or at each flush). Each chunk
 * is one fs.write on the thread pool and its completion callback; 64 KiB instead of 16 KiB took an
 * audit line from 1.7-2.0 to 1.0-1.5 µs of CPU in process (bench/README.md). The runtime's
 * one-second flush bounds how long a line waits.
 */
const BATCH_BYTES = 64 * 1024;

/** A broken named pipe is tried again at most this often, on a write (the runtime flushes every second). */
const REOPEN_EVERY_MS = 1000;
/** How long lines for a reopened file wait for the replaced destination to close (a stuck disk must not hold them for good). */
const HOLD_MAX_MS = 2000;

/** Every batch still holding lines when the process exits gets them written (sync, like pino's own exit flush). */
const live = new Set<WeakRef<LineBatch>>();
let exitHook = false;

/**
 * Encodes whole lines (UTF-8) into a 64 KiB buffer as they come and passes each full buffer to
 * pino's SonicBoom (in buffer mode). A line's string is garbage as soon as it is written here:
 * kept as strings until a chunk was full (the earlier design), a busy gate's lines outlived
 * young-generation collections, were promoted, and their old-space garbage cost mark-compact
 * collections (bench/README.md, "what each change bought"). Lines stay whole and in order; `flush`
 * (the runtime calls it every second and on drain), `flushSync` and exit write out what is pending.
 * The inner SonicBoom must be in buffer mode (`contentMode: 'buffer'`).
 */
export class LineBatch {
  #inner: SonicBoom;
  /** For a named pipe: a new destination once a reader is back after EPIPE, else undefined. */
  readonly #reopen: (() => SonicBoom | undefined) | undefined;
  /** For a file named by path: the same path opened as a new destination (reopen, on SIGHUP). */
  readonly #openFile: (() => SonicBoom) | undefined;
  #reopenTriedAt = Number.NEGATIVE_INFINITY;
  readonly #ref = new WeakRef(this);
  #buf: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES);
  #pos = 0;
  #destroyed = false;
  /** Callbacks of the flush in progress (undefined when none is). */
  #waiting: ((err?: Error) => void)[] | undefined;
  /**
   * Replaced destinations still closing after a reopen; while any is, chunks wait in #held. A second SIGHUP
   * before anything was renamed opens the same file again: two descriptors on one file, and the old one's last
   * write, in flight on the thread pool, landed after the new one's first (the reopen test, a full suite beside
   * other load, 2026-12-08): lines out of order, and an audit chain read as broken.
   */
  #closing = 0;
  readonly #held: Buffer[] = [];
  #heldBytes = 0;
  readonly #afterHold: ((err?: Error) => void)[] = [];
  #endAfterHold = false;

  constructor(inner: SonicBoom, reopen?: () => SonicBoom | undefined, openFile?: () => SonicBoom) {
    this.#inner = inner;
    this.#reopen = reopen;
    this.#openFile = openFile;
    live.add(this.#ref);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const ref of live) {
          try {
            ref.deref()?.flushSync();
          } catch {
            // A file that never opened (SonicBoom "not ready"): nothing can be written to it now.
          }
        }
      });
    }
  }

  write(line: string): boolean {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8 (a surrogate pair, 2 units, takes 4), so
    // this bound guarantees the whole line fits: utf8Write would silently cut what does not.
    if (line.length * 3 > BATCH_BYTES - this.#pos) {
      this.#push();
      if (line.length * 3 > BATCH_BYTES) {
        this.#emit(Buffer.from(line, 'utf8')); // a destroyed one drops and counts it (sonic)
        return true;
      }
    }
    this.#pos += this.#buf.write(line, this.#pos);
    return true;
  }

  flush(cb?: (err?: Error) => void): void {
    this.#push();
    if (this.#destroyed) {
      cb?.();
      return;
    }
    if (this.#closing > 0) {
      if (cb !== undefined) this.#afterHold.push(cb);
      return;
    }
    // One flush waits on the destination at a time: each SonicBoom flush(cb) adds a 'drain' and an
    // 'error' listener, and pino passes a callback on every call, so the runtime's once-a-second
    // flush would pile listeners up for as long as the destination is stuck.
    if (this.#waiting !== undefined) {
      if (cb !== undefined) this.#waiting.push(cb);
      return;
    }
    const waiting: ((err?: Error) => void)[] = cb === undefined ? [] : [cb];
    this.#waiting = waiting;
    this.#inner.flush((err?: Error) => this.#answer(waiting, err));
  }

  /** Each waiter once: a destination replaced (#reopened) answers its waiters before the old one would. */
  #answer(waiting: ((err?: Error) => void)[], err?: Error): void {
    if (this.#waiting === waiting) this.#waiting = undefined;
    for (const f of waiting.splice(0)) f(err);
  }

  flushSync(): void {
    // A failing destination is not written synchronously: SonicBoom's sync flush retries every error
    // forever, and at exit that held the process past any signal (a full disk, /dev/full).
    if (failing.has(this.#inner)) {
      if (this.#pos > 0) countDropped(this.#buf.subarray(0, this.#pos));
      this.#pos = 0;
      return;
    }
    this.#push();
    this.#release(); // at exit the order against a closing file no longer matters; the lines do
    this.#inner.flushSync();
    // SonicBoom's string mode (used before 7f7af93) fsynced here; its buffer mode does not. Kept as it was.
    try {
      fsyncSync((this.#inner as unknown as { fd: number }).fd);
    } catch {
      // A pipe or a terminal cannot be fsynced, as SonicBoom's own flushSync ignored too.
    }
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * After the file was renamed away (logrotate without copytruncate, then SIGHUP): the path is opened
   * as a new destination, and only once it is open are lines switched to it — those before go to the
   * renamed file, which is then closed; `done` says how the opening went (on a failure the file in
   * use is kept). Never SonicBoom's own reopen, which under load wrote a chunk in flight to both files
   * (a re-probe: hundreds of repeated lines, a broken audit chain). False for a destination opened by
   * descriptor (stdout, a named pipe), which has no path to open again.
   */
  reopen(done: (err?: Error) => void): boolean {
    const openFile = this.#openFile;
    if (this.#destroyed || openFile === undefined) return false;
    const next = openFile();
    const ready = (): void => {
      next.off('error', failed);
      if (this.#destroyed) {
        next.destroy();
        done(new Error('the log was closed meanwhile'));
        return;
      }
      this.#push(); // what came before the switch, to the renamed file
      const old = this.#switchTo(next);
      this.#holdUntilClosed(old);
      done();
    };
    const failed = (err: Error): void => {
      next.off('ready', ready);
      next.destroy();
      done(err);
    };
    next.once('ready', ready);
    next.once('error', failed);
    return true;
  }

  /** Drops what is pending and writes nothing more (flushWithin's give-up). */
  destroy(): void {
    if (this.#pos > 0) countDropped(this.#buf.subarray(0, this.#pos));
    this.#pos = 0;
    for (const chunk of this.#held.splice(0)) countDropped(chunk);
    this.#heldBytes = 0;
    for (const cb of this.#afterHold.splice(0)) cb();
    live.delete(this.#ref);
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#inner.destroy();
  }

  end(): void {
    this.#push();
    live.delete(this.#ref);
    if (this.#destroyed) return;
    if (this.#closing > 0) this.#endAfterHold = true;
    else this.#inner.end();
  }

  #push(): void {
    if (this.#pos === 0) return;
    // Given up (flushWithin): what comes after shutdown's last flush is dropped and counted, never a throw.
    if (this.#destroyed) {
      countDropped(this.#buf.subarray(0, this.#pos));
      this.#pos = 0;
      return;
    }
    // SonicBoom keeps the chunk until it is written: a fresh buffer for the next lines.
    const chunk = this.#buf.subarray(0, this.#pos);
    if (broken.has(this.#inner) && !this.#reopened()) {
      // pino made its writes no-ops (EPIPE): counted, and the buffer reused.
      countDropped(chunk);
      this.#pos = 0;
      return;
    }
    this.#buf = Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.#pos = 0;
    this.#emit(chunk);
  }

  /** To the destination, or held while a replaced one closes (bounded as the destination's own backlog is). */
  #emit(chunk: Buffer): void {
    if (this.#closing === 0) {
      this.#inner.write(chunk as never);
      return;
    }
    if (this.#heldBytes + chunk.length > MAX_PENDING_BYTES) {
      countDropped(chunk);
      return;
    }
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
  }

  /** Ends `old`; lines wait until it has closed (or HOLD_MAX_MS passed), so its last write lands before theirs. */
  #holdUntilClosed(old: SonicBoom): void {
    this.#closing++;
    let done = false;
    const closed = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.#closing--;
      if (this.#closing === 0) {
        this.#release();
        for (const cb of this.#afterHold.splice(0)) this.flush(cb);
        if (this.#endAfterHold && !this.#destroyed) this.#inner.end();
      }
    };
    const timer = setTimeout(closed, HOLD_MAX_MS);
    timer.unref();
    old.once('close', closed);
    old.once('error', closed);
    old.end();
  }

  #release(): void {
    if (this.#held.length === 0) return;
    const chunks = this.#held.splice(0);
    this.#heldBytes = 0;
    if (this.#destroyed) {
      for (const chunk of chunks) countDropped(chunk);
      return;
    }
    for (const chunk of chunks) this.#inner.write(chunk as never);
  }

  /**
   * Lines go to `next` from now on; returns the destination it replaces, for the caller to end or
   * destroy. A flush waiting on that one is answered now: left waiting, every later flush queued
   * behind it and lines sat in memory until exit (a re-probe).
   */
  #switchTo(next: SonicBoom): SonicBoom {
    const old = this.#inner;
    this.#inner = next;
    if (this.#waiting !== undefined) this.#answer(this.#waiting);
    return old;
  }

  /** Whether a broken named pipe has a reader again, now written to instead (tried at most once a second). */
  #reopened(): boolean {
    const now = Date.now();
    if (this.#reopen === undefined || now - this.#reopenTriedAt < REOPEN_EVERY_MS) return false;
    this.#reopenTriedAt = now;
    const next = this.#reopen();
    if (next === undefined) return false;
    // pino made the broken stream's destroy a no-op: SonicBoom's own drops what it still held (written now, its
    // chunks could interleave with the new stream's in the pipe) and closes the fd once a write under way is done.
    const old = this.#switchTo(next);
    Object.getPrototypeOf(old).destroy.call(old);
    process.stderr.write(`${JSON.stringify({ level: 'info', time: new Date(now).toISOString(), pid: process.pid, dropped_lines: droppedLines, msg: 'the log destination has a reader again: the named pipe was opened again and lines are written from now on' })}\n`);
    return true;
  }
}

/**
 * pino's `isoTime` fragment, formatted once per millisecond: a busy gate writes many audit lines
 * in the same millisecond, and `toISOString` was a visible slice of each line's cost.
 */
export function isoTimePerMs(now: () => number = Date.now): () => string {
  let last = Number.NaN;
  let text = '';
  return () => {
    const ms = now();
    if (ms !== last) {
      last = ms;
      text = `,"time":"${new Date(ms).toISOString()}"`;
    }
    return text;
  };
}

export function createLogger(options: LogOptions, stream?: DestinationStream): Logger {
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      redact: { paths: [...REDACT], censor: REDACT_CENSOR },
      timestamp: isoTimePerMs(),
      formatters: { level: (label) => ({ level: label }) },
    },
    stream ?? createDestination(options.destination),
  );
}
