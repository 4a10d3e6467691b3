/**
 * The union of every configured revocation source (file, URL, admin journal). Each source swaps
 * in a whole new index when it reloads, so a half-read feed never empties the list.
 */
import type { ReloadReport } from '../reload-report.ts';
import { RevocationIndex } from './revocation-index.ts';

export interface RevocationSource {
  readonly name: string;
  /** The source's current index; replaced atomically on reload. */
  readonly index: RevocationIndex;
  /** ms since epoch of the last successful sync; undefined when the source is not remote. */
  readonly lastSyncAt: number | undefined;
  /** Remote sources: no successful sync for longer than this → fail closed. */
  readonly maxStaleMs: number | undefined;
  /**
   * True while the source knows its list may lag although it is not away: the process stood still
   * (src/fleet/stall-guard.ts). Decisions then fail closed as for max_stale; readiness is unaffected.
   */
  readonly behind?: boolean;
  /** Set while the last reload was refused and an older list is kept (shown in /readyz; not unready). */
  readonly problem?: string | undefined;
  /** SIGHUP (reload.ts): only a source that re-reads something on a signal has it. Never rejects. */
  reloadOnSignal?(): Promise<ReloadReport>;
  start(): Promise<void>;
  stop(): void;
}

export class RevocationList {
  readonly #sources: RevocationSource[];

  constructor(sources: RevocationSource[]) {
    this.#sources = sources;
  }

  get sources(): readonly RevocationSource[] {
    return this.#sources;
  }

  isRevoked(jti: string, sub: string, iat: number, txn: string | undefined): boolean {
    for (const s of this.#sources) if (s.index.isRevoked(jti, sub, iat, txn)) return true;
    return false;
  }

  /**
   * The name of a remote source past max_stale (or never synced), else undefined. For a decision
   * (`orBehind`), also one that is behind after the process stood still.
   */
  staleSource(nowMs: number, orBehind = false): string | undefined {
    for (const s of this.#sources) {
      if (s.maxStaleMs === undefined) continue;
      if (s.lastSyncAt === undefined || nowMs - s.lastSyncAt > s.maxStaleMs) return s.name;
      if (orBehind && s.behind === true) return s.name;
    }
    return undefined;
  }

  get size(): number {
    let n = 0;
    for (const s of this.#sources) n += s.index.size;
    return n;
  }

  async start(): Promise<void> {
    await Promise.all(this.#sources.map((s) => s.start()));
  }

  stop(): void {
    for (const s of this.#sources) s.stop();
  }
}
