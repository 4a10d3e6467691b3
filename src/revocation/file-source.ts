/**
 * Revocation entries from a local JSON Lines file. Loaded at start; reloaded when the file
 * changes (or on SIGHUP), swapping in a whole new index only after the new text parsed (a file
 * with some bad lines loses only those, which are reported with their numbers).
 *
 * A reload that would un-revoke through a badly replaced file is refused and the last good list
 * kept (reload-guard.ts: zero bytes where entries existed, a torn last line, no valid line). The
 * file is also stat'ed before and after the read: a file that changed meanwhile was read while
 * being written, so it is not used and read again at the next poll; and a polled change is read
 * only once the file has been still for SETTLE_MS, so the pauses of an in-place rewrite are not
 * mistaken for its end. An entry in force that a new text leaves out is held, still enforced, until
 * it has been absent for SHRINK_CONFIRM_MS, whatever versions of the file came meanwhile; what a text
 * adds is enforced at once (a writer paused mid-rewrite leaves a clean prefix; a re-probe saw one with
 * as many entries as the list applied at once, and a revoked token allowed for the 3 s of the pause).
 * Holding per entry keeps the list bounded when the file changes faster than that (a re-probe grew a
 * union of versions to 1.3 M entries). Writers should still write a temp file and rename it over the
 * list (docs/hardening-faults.md).
 */
import { readFile, stat } from 'node:fs/promises';
import type { LineError, RevocationEntry } from './entries.ts';
import { judgeReload, type RefusalReason } from './reload-guard.ts';
import { RevocationIndex } from './revocation-index.ts';
import { eachSliced } from './slices.ts';
import type { RevocationSource } from './revocation-list.ts';
import type { ReloadReport } from '../reload-report.ts';
import { StartupError } from '../errors.ts';
import { fileVersion, notRegularFile } from '../file-version.ts';

/** A changed file is read once it has not been modified for this long (see #check). */
const SETTLE_MS = 100;
/**
 * An entry in force that the file's text leaves out stays enforced until it has been absent this long: a writer
 * starved between two writes of an in-place rewrite can leave a prefix that ends at a line boundary and parses
 * cleanly, and applying it at once would un-revoke the rest.
 */
const SHRINK_CONFIRM_MS = 1_000;
const START_ATTEMPTS = 5;
const START_RETRY_MS = 100;

export interface FileSourceEvents {
  loaded?(info: { entries: number; errors: readonly LineError[]; durationMs: number }): void;
  failed?(err: Error): void;
  /** A reload was refused; `kept` entries of the last good list stay enforced. */
  refused?(info: { reason: RefusalReason; detail: string; kept: number }): void;
}

export interface FileSourceOptions {
  /** Keep entries this long past their `exp` (the largest issuer clock tolerance; retention.ts). */
  readonly retainMs?: number;
}

export class FileRevocationSource implements RevocationSource {
  readonly name: string;
  readonly lastSyncAt = undefined;
  readonly maxStaleMs = undefined;
  readonly #file: string;
  readonly #events: FileSourceEvents;
  readonly #pollMs: number;
  readonly #retainMs: number;
  #index = new RevocationIndex();
  #timer: NodeJS.Timeout | undefined;
  /** fileVersion of the file as last read ('' before the first read, or to read it again). */
  #version = '';
  /** Entries in force that the text left out, by entryKey, with when they were first missed. */
  readonly #held = new Map<string, { readonly entry: RevocationEntry; readonly since: number }>();
  #release: NodeJS.Timeout | undefined;
  /** After stop(): a reload still under way arms no release timer. */
  #stopped = false;
  /** Why the last read was not applied (a refused text or an unreadable file); undefined after one that was. */
  #failure: { readonly what: string; readonly refused: boolean } | undefined;
  #lastRefusal: RefusalReason | undefined;
  #settle: NodeJS.Timeout | undefined;
  /** The reload under way (a large file parses for a while): the next one waits for it. */
  #reloading: Promise<void> | undefined;

  constructor(file: string, pollMs: number, events: FileSourceEvents = {}, options: FileSourceOptions = {}) {
    this.name = `file:${file}`;
    this.#file = file;
    this.#pollMs = pollMs;
    this.#events = events;
    this.#retainMs = options.retainMs ?? 0;
  }

  get index(): RevocationIndex {
    return this.#index;
  }

  /** Entries the text left out that are still enforced, waiting for a read a second later to leave them out too. */
  get pendingRemoval(): boolean {
    return this.#held.size > 0;
  }

  /** SIGHUP: read now. What was loaded or refused is logged and counted by this source's own events. */
  async reloadOnSignal(): Promise<ReloadReport> {
    try {
      await this.reload();
    } catch (err) {
      return { ok: false, msg: 'revocation reload failed; keeping the last good list', fields: { source: this.name, err: (err as Error).message } };
    }
    if (this.#failure !== undefined) return { ok: false };
    if (this.pendingRemoval) return { ok: true, msg: 'the revocation file drops entries: they stay enforced until a read 1 s later still leaves them out', fields: { source: this.name } };
    return { ok: true };
  }

  /** Why the last reload was refused or the file could not be read (for /readyz), until a reload succeeds again. */
  get problem(): string | undefined {
    const f = this.#failure;
    return f === undefined ? undefined : `revocation source ${this.name}: ${f.refused ? 'last reload ' : ''}${f.what}; keeping the last good list of ${this.#index.size} entries`;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    try {
      await this.reload();
      // Caught mid-write at start: the writer is about to finish, read it again rather than fail.
      for (let i = 0; i < START_ATTEMPTS && this.#lastRefusal === 'changing'; i++) {
        await new Promise((r) => setTimeout(r, START_RETRY_MS));
        await this.reload();
      }
    } catch (err) {
      throw new StartupError(`revocation.file ${this.#file}: ${(err as Error).message}`, { cause: err });
    }
    // Nothing to keep yet: a torn or garbage file at start is an error the operator must see (said as
    // such: the running gate's "keeping the last good list of 0 entries" read as if it went on serving).
    if (this.#failure !== undefined) throw new StartupError(`revocation.file ${this.#file}: ${this.#failure.what}; no list was ever loaded, so jitgate does not start`);
    // Polling stat is portable (fs.watch misses atomic renames on some filesystems) and cheap.
    this.#timer = setInterval(() => void this.#check(), this.#pollMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#settle) clearTimeout(this.#settle);
    if (this.#release) clearTimeout(this.#release);
  }

  async #check(): Promise<void> {
    if (this.#reloading !== undefined) return; // the poll after it looks again
    try {
      const s = await stat(this.#file);
      if (fileVersion(s) === this.#version) return;
      // Modified moments ago: a writer may be between two writes of an in-place rewrite, and a
      // prefix cut at a line boundary parses cleanly. Look again once it has been still for SETTLE_MS.
      // ctime too: a copy that kept the old mtime (cp -p, rsync -t, touch -r) changed it just now.
      const age = Date.now() - Math.max(s.mtimeMs, s.ctimeMs);
      if (age >= 0 && age < SETTLE_MS) {
        if (this.#settle === undefined) {
          this.#settle = setTimeout(() => {
            this.#settle = undefined;
            void this.#check();
          }, SETTLE_MS - age);
          this.#settle.unref();
        }
        return;
      }
      await this.reload();
    } catch (err) {
      this.#unreadable(err as NodeJS.ErrnoException);
      this.#events.failed?.(err as Error);
    }
  }

  /**
   * Keep the last good index: a missing or unreadable file never un-revokes anything. Shown in
   * /readyz as a refused text is (a re-probe deleted the file: only a log line said so), whether a
   * poll or a SIGHUP found it.
   */
  #unreadable(err: NodeJS.ErrnoException): void {
    this.#restartHolds();
    this.#failure = { what: `the file cannot be read (${err.code ?? err.message})`, refused: false };
    this.#version = '';
  }

  /**
   * Reads the file now; a refused text keeps the last good list (see `problem`). Rejects when
   * unreadable. After a reload under way (SIGHUP during a poll's reload): two never interleave.
   */
  reload(): Promise<void> {
    const before = this.#reloading?.catch(() => undefined) ?? Promise.resolve();
    const work = (): Promise<void> =>
      this.#reloadNow().catch((err: unknown) => {
        this.#unreadable(err as NodeJS.ErrnoException);
        throw err;
      });
    const p: Promise<void> = before.then(work).finally(() => {
      if (this.#reloading === p) this.#reloading = undefined;
    });
    this.#reloading = p;
    return p;
  }

  async #reloadNow(): Promise<void> {
    const started = performance.now();
    const before = await stat(this.#file);
    // A named pipe (or a device) in the list's place: reading it would wait on the thread pool's one
    // thread for a writer, and every later reload behind it (a re-probe wedged a gate this way).
    if (!before.isFile()) throw notRegularFile();
    // Unchanged since it was last read (a SIGHUP storm on a large list re-parsed it every time): nothing to do.
    if (fileVersion(before) === this.#version) return;
    const bytes = await readFile(this.#file);
    const after = await stat(this.#file);
    // When the text was seen, not when it was parsed: a large file parses for a while, and a hold
    // must span a second of the file, not of our work (a re-probe released after reads 0.55 s apart).
    const seenAt = Date.now();
    const version = fileVersion(after);
    if (version !== fileVersion(before) || bytes.length !== after.size) {
      // Read while being written: neither remembered as loaded nor used; the next poll reads it again.
      this.#refuse('changing', 'the file changed while it was read (written in place?); read again at the next poll');
      return;
    }
    const verdict = await judgeReload(bytes.toString('utf8'), this.#index.size > 0);
    // Remembered either way: a refused text is not read again until the file changes.
    this.#version = version;
    if ('refused' in verdict) {
      this.#refuse(verdict.refused, verdict.detail);
      return;
    }
    const index = await RevocationIndex.of(verdict.entries);
    await index.prune(Date.now() / 1000, this.#retainMs);
    this.#failure = undefined;
    this.#lastRefusal = undefined;
    // What is in force and the text leaves out is held from now (or since it was first missed);
    // what the text covers again is let go of.
    const held = this.#held;
    await eachSliced(this.#index.entries(), (e) => {
      if (index.covers(e)) return;
      const k = entryKey(e);
      if (!held.has(k)) held.set(k, { entry: e, since: seenAt });
    });
    for (const [k, h] of held) if (index.covers(h.entry)) held.delete(k);
    await this.#install(index, verdict.errors, started, seenAt);
  }

  /**
   * Enforces the text's list (`parsed`) plus what is still held. An entry is released only by a text read at least
   * SHRINK_CONFIRM_MS after it was first missed that still leaves it out — never by the clock alone,
   * or a writer busy mid-rewrite for a second (every read refused as changing or torn) would un-revoke
   * what the first clean prefix missed. When one is due, the file is read again.
   */
  async #install(parsed: RevocationIndex, errors: readonly LineError[], started: number, seenAt: number): Promise<void> {
    let due = Number.POSITIVE_INFINITY;
    for (const [k, h] of this.#held) {
      if (seenAt - h.since >= SHRINK_CONFIRM_MS) this.#held.delete(k);
      else due = Math.min(due, h.since + SHRINK_CONFIRM_MS);
    }
    this.#index = this.#held.size === 0 ? parsed : await RevocationIndex.of(chain(parsed.entries(), [...this.#held.values()].map((h) => h.entry)));
    this.#events.loaded?.({ entries: this.#index.size, errors, durationMs: performance.now() - started });
    if (this.#release !== undefined) clearTimeout(this.#release);
    this.#release = undefined;
    if (due === Number.POSITIVE_INFINITY || this.#stopped) return;
    this.#release = setTimeout(() => {
      this.#release = undefined;
      this.#version = ''; // read it again even if unchanged: that read confirms the absence
      void this.#check();
    }, Math.max(0, due - Date.now()) + 10);
    this.#release.unref();
  }

  /**
   * A read that was refused (torn, changing) or failed shows nothing about the held entries: their
   * second starts again, so only accepted texts a second apart can release one (a re-probe: a
   * rewrite stalled on a torn line, or the file deleted, for over a second, and the next clean
   * prefix released at once what the first one had missed).
   */
  #restartHolds(): void {
    const now = Date.now();
    for (const [k, h] of this.#held) this.#held.set(k, { entry: h.entry, since: now });
  }

  #refuse(reason: RefusalReason, detail: string): void {
    // `changing` is a read that raced a write — most often a rename of a whole new file (a re-probe:
    // restarting on it let a writer replacing the file often keep every hold, and the list grew):
    // it shows nothing either way, and the next read looks again.
    if (reason !== 'changing') this.#restartHolds();
    this.#lastRefusal = reason;
    this.#failure = { what: `refused (${reason}): ${detail}`, refused: true };
    this.#events.refused?.({ reason, detail, kept: this.#index.size });
  }
}

/** One entry as a map key: its kind, ids and exp (a longer exp is another entry). */
function entryKey(e: RevocationEntry): string {
  const id = e.kind === 'jti' ? e.jti : e.kind === 'txn' ? e.txn : `${e.sub}\u0000${e.before}`;
  return `${e.kind}\u0000${id}\u0000${e.exp ?? ''}`;
}

function* chain<T>(...lists: Iterable<T>[]): IterableIterator<T> {
  for (const l of lists) yield* l;
}
