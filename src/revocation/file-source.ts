/**
 * Revocation entries from a local JSON Lines file. Loaded at start; reloaded when the file
 * changes, swapping in a whole new index only after the new text parsed (a half-written file
 * loses only its bad lines, which are reported with their numbers).
 */
import { readFile, stat } from 'node:fs/promises';
import { parseJsonLines, type LineError } from './entries.ts';
import { RevocationIndex } from './revocation-index.ts';
import type { RevocationSource } from './revocation-list.ts';
import { StartupError } from '../errors.ts';

export interface FileSourceEvents {
  loaded?(info: { entries: number; errors: readonly LineError[]; durationMs: number }): void;
  failed?(err: Error): void;
}

export class FileRevocationSource implements RevocationSource {
  readonly name: string;
  readonly lastSyncAt = undefined;
  readonly maxStaleMs = undefined;
  readonly #file: string;
  readonly #events: FileSourceEvents;
  readonly #pollMs: number;
  #index = new RevocationIndex();
  #timer: NodeJS.Timeout | undefined;
  #mtimeMs = -1;
  #size = -1;

  constructor(file: string, pollMs: number, events: FileSourceEvents = {}) {
    this.name = `file:${file}`;
    this.#file = file;
    this.#pollMs = pollMs;
    this.#events = events;
  }

  get index(): RevocationIndex {
    return this.#index;
  }

  async start(): Promise<void> {
    try {
      await this.reload();
    } catch (err) {
      throw new StartupError(`revocation.file ${this.#file}: ${(err as Error).message}`, { cause: err });
    }
    // Polling stat is portable (fs.watch misses atomic renames on some filesystems) and cheap.
    this.#timer = setInterval(() => void this.#check(), this.#pollMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  async #check(): Promise<void> {
    try {
      const s = await stat(this.#file);
      if (s.mtimeMs === this.#mtimeMs && s.size === this.#size) return;
      await this.reload();
    } catch (err) {
      // Keep the last good index: a missing or unreadable file never un-revokes anything.
      this.#events.failed?.(err as Error);
    }
  }

  async reload(): Promise<void> {
    const started = performance.now();
    const s = await stat(this.#file);
    const text = await readFile(this.#file, 'utf8');
    const { entries, errors } = parseJsonLines(text);
    const index = new RevocationIndex(entries);
    index.prune(Date.now() / 1000);
    this.#index = index;
    this.#mtimeMs = s.mtimeMs;
    this.#size = s.size;
    this.#events.loaded?.({ entries: index.size, errors, durationMs: performance.now() - started });
  }
}
