/**
 * The append-only journal of admin-API revocations (SPEC §5): one JSON line per entry, written and
 * fsynced before the API answers 2xx, replayed at start. A crash loses nothing acknowledged.
 *
 * - Appends are group-committed: concurrent callers share one write + fdatasync, and each
 *   resolves only after the sync that covers its lines.
 * - A crash mid-write can leave a torn last line (no trailing newline). It was never
 *   acknowledged, so replay drops it and truncates the file back to the last full line before
 *   appending again (otherwise the next entry would be glued onto the fragment).
 * - A failed write is truncated back to the last synced size, for the same reason.
 */
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseEntry, parseJsonLines, type LineError, type RevocationEntry } from './entries.ts';
import { parseJson } from '../core/json-parse.ts';

export interface ReplayResult {
  readonly entries: RevocationEntry[];
  /** Lines that did not parse (corruption other than a torn tail), with their numbers. */
  readonly errors: readonly LineError[];
  /** A partial last line was dropped. */
  readonly tornTail: boolean;
  readonly bytes: number;
}

/** The journal line of an entry: the same JSON a revocation feed uses. */
export function entryToJson(e: RevocationEntry): string {
  const exp = e.exp === undefined ? '' : `,"exp":${e.exp}`;
  switch (e.kind) {
    case 'jti':
      return `{"jti":${JSON.stringify(e.jti)}${exp}}`;
    case 'txn':
      return `{"txn":${JSON.stringify(e.txn)}${exp}}`;
    case 'sub':
      return `{"sub":${JSON.stringify(e.sub)},"before":${e.before}${exp}}`;
  }
}

interface Waiter {
  readonly text: string;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** Makes a created or renamed file's directory entry durable. */
async function syncDir(file: string): Promise<void> {
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export class Journal {
  readonly file: string;
  #fh: FileHandle | undefined;
  /** Bytes known to be in the file and synced. */
  #size = 0;
  #queue: Waiter[] = [];
  #flushing = false;

  constructor(file: string) {
    this.file = file;
  }

  /** Reads the journal (creating it when absent), repairs a torn tail, and opens it for appends. */
  async open(): Promise<ReplayResult> {
    let buf: Buffer;
    let created = false;
    try {
      buf = await readFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      buf = Buffer.alloc(0);
      created = true;
    }
    let keep = buf.length;
    let tornTail = false;
    let fixNewline = false;
    if (buf.length > 0 && buf[buf.length - 1] !== 0x0a) {
      const lastNl = buf.lastIndexOf(0x0a);
      const tail = buf.subarray(lastNl + 1).toString('utf8');
      let whole = false;
      try {
        whole = typeof parseEntry(parseJson(tail)) !== 'string';
      } catch {
        whole = false;
      }
      // A complete entry that only lacks its newline is kept; a fragment is dropped.
      if (whole) fixNewline = true;
      else {
        keep = lastNl + 1;
        tornTail = true;
      }
    }
    const { entries, errors } = parseJsonLines(buf.subarray(0, keep).toString('utf8'));
    const fh = await open(this.file, 'a');
    try {
      if (keep < buf.length) await fh.truncate(keep);
      if (fixNewline) {
        await fh.appendFile('\n');
        keep++;
      }
      await fh.datasync();
      if (created) await syncDir(this.file);
    } catch (err) {
      await fh.close();
      throw err;
    }
    this.#fh = fh;
    this.#size = keep;
    return { entries, errors, tornTail, bytes: keep };
  }

  /** Appends entries; resolves once they are on disk (fdatasync), rejects when they may not be. */
  append(entries: readonly RevocationEntry[]): Promise<void> {
    if (this.#fh === undefined) return Promise.reject(new Error(`journal ${this.file} is not open`));
    if (entries.length === 0) return Promise.resolve();
    let text = '';
    for (const e of entries) text += `${entryToJson(e)}\n`;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ text, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      const fh = this.#fh;
      const text = batch.map((w) => w.text).join('');
      try {
        if (fh === undefined) throw new Error(`journal ${this.file} is closed`);
        await fh.appendFile(text);
        await fh.datasync();
        this.#size += Buffer.byteLength(text);
        for (const w of batch) w.resolve();
      } catch (err) {
        // Never leave a partial line for the next append to be glued to.
        await fh?.truncate(this.#size).catch(() => {});
        for (const w of batch) w.reject(err as Error);
      }
    }
    this.#flushing = false;
  }

  /**
   * Rewrites the journal with only `entries` (e.g. after dropping expired ones): a synced temp file
   * renamed over the old one, so a crash leaves either the old or the new journal, never half.
   * Call only when no append is in flight (at start).
   */
  async compact(entries: readonly RevocationEntry[]): Promise<void> {
    const tmp = `${this.file}.compact-${process.pid}`;
    let text = '';
    for (const e of entries) text += `${entryToJson(e)}\n`;
    const out = await open(tmp, 'w');
    try {
      await out.writeFile(text);
      await out.sync();
    } finally {
      await out.close();
    }
    try {
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await syncDir(this.file);
    await this.#fh?.close();
    this.#fh = await open(this.file, 'a');
    this.#size = Buffer.byteLength(text);
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}
