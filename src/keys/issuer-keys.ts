/**
 * The key source of one issuer. Only that issuer's keys verify its tokens (SPEC §1 `iss`).
 * Local files load once at start; remote sets (jwks_uri) implement the same interface with
 * background refresh and unknown-kid refetch (src/keys/remote-issuer-keys.ts).
 */
import { readFile } from 'node:fs/promises';
import type { IssuerConfig } from '../config/schema.ts';
import { StartupError } from '../errors.ts';
import type { ReloadReport } from '../reload-report.ts';
import { importJwks, type KeyEntry, KeySet } from './key-set.ts';

export type KeyState = 'ready' | 'loading' | 'stale';

export interface IssuerKeys {
  readonly issuer: string;
  /** `loading`: no set yet (503 keys_unavailable); `stale`: refreshes failed past jwks_max_stale (503 keys_stale). */
  state(nowMs: number): KeyState;
  /** The entry for kid/alg in the current set; a remote source may refetch once for an unknown kid. */
  resolve(kid: string | undefined, alg: string): KeyEntry | undefined | Promise<KeyEntry | undefined>;
  /** Whether a key is still in the current set: a key that leaves the set stops counting at once (SPEC §6). */
  has(entry: KeyEntry): boolean;
  readonly size: number;
  /** What is degraded but still decided right (a refused reload that kept the current set), for /readyz. */
  readonly problem?: string | undefined;
  /** SIGHUP (reload.ts): only a source that re-reads something on a signal has it. Never rejects. */
  reloadOnSignal?(): Promise<ReloadReport>;
  start(): Promise<void>;
  stop(): void;
}

export class FileIssuerKeys implements IssuerKeys {
  readonly issuer: string;
  readonly #config: IssuerConfig;
  #set: KeySet = new KeySet([]);
  #loaded = false;
  readonly skipped: string[] = [];
  problem: string | undefined;

  constructor(config: IssuerConfig) {
    this.issuer = config.issuer;
    this.#config = config;
  }

  async start(): Promise<void> {
    try {
      await this.reload();
    } catch (err) {
      throw new StartupError(`issuer ${this.issuer}: jwks_file ${this.#config.jwks_file!}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Reads the file again (at start, and on SIGHUP). The current set stays in use unless the new
   * file parses and holds at least one usable key, or (on a reload) an empty `keys` array, which
   * withdraws them all. Returns the new set's size.
   */
  async reload(): Promise<number> {
    try {
      const size = await this.#read();
      this.problem = undefined;
      return size;
    } catch (err) {
      // Shown in /readyz until a reload succeeds (a re-probe: only a log line and a counter said so).
      if (this.#loaded) this.problem = `keys for issuer ${this.issuer}: jwks_file reload failed (${(err as Error).message}); keeping the current set of ${this.#set.size} keys`;
      throw err;
    }
  }

  async reloadOnSignal(): Promise<ReloadReport> {
    try {
      const keys = await this.reload();
      return { ok: true, msg: 'jwks_file reloaded', fields: { issuer: this.issuer, keys } };
    } catch (err) {
      return { ok: false, msg: 'jwks_file reload failed; keeping the current key set', fields: { issuer: this.issuer, err: (err as Error).message } };
    }
  }

  async #read(): Promise<number> {
    const doc: unknown = JSON.parse(await readFile(this.#config.jwks_file!, 'utf8'));
    // Unchanged keys keep their entries, so what they verified (cached tokens, status lists) still
    // counts after a SIGHUP (a re-probe: every held status list was dropped by one).
    const { set, skipped } = await importJwks(doc, this.#config.algorithms, this.#loaded ? this.#set : undefined);
    // An empty `keys` array on a reload is the operator withdrawing every key: applied, as for a
    // remote JWKS (SPEC §6; a re-probe found the file kept its old keys). At start, and for keys that
    // are all unusable, it is refused: that is a mistake, not a withdrawal.
    const withdrawn = this.#loaded && (doc as { keys: unknown[] }).keys.length === 0;
    if (set.size === 0 && !withdrawn) throw new Error(`no usable key${skipped.length ? `: ${skipped.join('; ')}` : ''}`);
    this.skipped.splice(0, this.skipped.length, ...skipped);
    this.#set = set;
    this.#loaded = true;
    return set.size;
  }

  stop(): void {}

  state(): KeyState {
    return this.#loaded ? 'ready' : 'loading';
  }

  resolve(kid: string | undefined, alg: string): KeyEntry | undefined {
    return this.#set.entryFor(kid, alg);
  }

  has(entry: KeyEntry): boolean {
    return this.#set.has(entry);
  }

  get size(): number {
    return this.#set.size;
  }
}
