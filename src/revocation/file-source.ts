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
 * mistaken for its end. A new text that drops any entry in force is a removal: what it adds is
 * enforced at once, what it drops only once the same file has stood for SHRINK_CONFIRM_MS (a
 * writer paused mid-rewrite leaves a clean prefix; a re-probe saw one with as many entries as the
 * list applied at once, and a revoked token allowed for the 3 s of the pause). Writers should still
 * write a temp file and rename it over the list (docs/hardening-faults.md).
 */
import { readFile, stat } from 'node:fs/promises';
import type { LineError } from './entries.ts';
import { judgeReload, type RefusalReason } from './reload-guard.ts';
import { RevocationIndex } from './revocation-index.ts';
import { eachSliced } from './slices.ts';
import type { RevocationSource } from './revocation-list.ts';
import { StartupError } from '../errors.ts';
import { fileVersion } from '../file-version.ts';

/** A changed file is read once it has not been modified for this long (see #check). */
const SETTLE_MS = 100;
/**
 * A reload that drops entries in force is applied only when the same file (fileVersion) is still there this long
 * after it was first read: a writer starved between two writes of an in-place rewrite can leave a prefix that ends
 * at a line boundary and parses cleanly, and applying it would un-revoke the rest. Meanwhile the old and new lists
 * are enforced together.
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
  /** A version of the file that drops entries, waiting for confirmation (SHRINK_CONFIRM_MS). */
  #shrink: { version: string; at: number } | undefined;
  #problem: string | undefined;
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

  /** Removals waiting for their file to stand still (the old list is still enforced beside the new). */
  get pendingRemoval(): boolean {
    return this.#shrink !== undefined;
  }

  /** Why the last reload was refused or the file could not be read (for /readyz), until a reload succeeds again. */
  get problem(): string | undefined {
    return this.#problem;
  }

  async start(): Promise<void> {
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
    // Nothing to keep yet: a torn or garbage file at start is an error the operator must see.
    if (this.#problem !== undefined) throw new StartupError(`revocation.file ${this.#file}: ${this.#problem}`);
    // Polling stat is portable (fs.watch misses atomic renames on some filesystems) and cheap.
    this.#timer = setInterval(() => void this.#check(), this.#pollMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#settle) clearTimeout(this.#settle);
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
      // Keep the last good index: a missing or unreadable file never un-revokes anything. Shown in
      // /readyz as a refused text is (a re-probe deleted the file: only a log line said so).
      const e = err as NodeJS.ErrnoException;
      this.#problem = `revocation source ${this.name}: the file cannot be read (${e.code ?? e.message}); keeping the last good list of ${this.#index.size} entries`;
      this.#version = '';
      this.#events.failed?.(e);
    }
  }

  /**
   * Reads the file now; a refused text keeps the last good list (see `problem`). Rejects when
   * unreadable. After a reload under way (SIGHUP during a poll's reload): two never interleave.
   */
  reload(): Promise<void> {
    const before = this.#reloading?.catch(() => undefined) ?? Promise.resolve();
    const p: Promise<void> = before.then(() => this.#reloadNow()).finally(() => {
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
    if (!before.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    // Unchanged since it was last read (a SIGHUP storm on a large list re-parsed it every time): nothing to do.
    if (fileVersion(before) === this.#version && this.#shrink === undefined) return;
    const bytes = await readFile(this.#file);
    const after = await stat(this.#file);
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
    this.#problem = undefined;
    this.#lastRefusal = undefined;
    if ((await drops(index, this.#index)) && !this.#shrinkConfirmed(version)) {
      // What it adds counts at once; what it drops waits: both lists (and whatever an earlier
      // unconfirmed version added), until the file stands still.
      this.#index = await RevocationIndex.of(chain(this.#index.entries(), index.entries()));
      return;
    }
    this.#shrink = undefined;
    this.#index = index;
    this.#events.loaded?.({ entries: index.size, errors: verdict.errors, durationMs: performance.now() - started });
  }

  /** True once a shrinking file has stood unchanged for SHRINK_CONFIRM_MS; else arms a second look and says no. */
  #shrinkConfirmed(version: string): boolean {
    const now = Date.now();
    const seen = this.#shrink;
    if (seen !== undefined && seen.version === version && now - seen.at >= SHRINK_CONFIRM_MS) return true;
    if (seen === undefined || seen.version !== version) this.#shrink = { version, at: now };
    // Not remembered as loaded, so the next check reads it again; look again once the wait is over.
    this.#version = '';
    if (this.#settle === undefined) {
      this.#settle = setTimeout(() => {
        this.#settle = undefined;
        void this.#check();
      }, SHRINK_CONFIRM_MS - (now - this.#shrink!.at) + 10);
      this.#settle.unref();
    }
    return false;
  }

  #refuse(reason: RefusalReason, detail: string): void {
    this.#lastRefusal = reason;
    this.#problem = `revocation source ${this.name}: last reload refused (${reason}): ${detail}; keeping the last good list of ${this.#index.size} entries`;
    this.#events.refused?.({ reason, detail, kept: this.#index.size });
  }
}

/** Whether `next` leaves out anything `current` revokes (an entry, or part of one: a shorter exp, an earlier cut-off). */
async function drops(next: RevocationIndex, current: RevocationIndex): Promise<boolean> {
  let dropped = false;
  await eachSliced(current.entries(), (e) => {
    if (!dropped && !next.covers(e)) dropped = true;
  });
  return dropped;
}

function* chain<T>(...lists: Iterable<T>[]): IterableIterator<T> {
  for (const l of lists) yield* l;
}
