/**
 * The key source of one issuer. Only that issuer's keys verify its tokens (SPEC §1 `iss`).
 * Local files load once at start; remote sets (jwks_uri) implement the same interface with
 * background refresh and unknown-kid refetch (src/keys/remote-issuer-keys.ts).
 */
import { readFile } from 'node:fs/promises';
import type { IssuerConfig } from '../config/schema.ts';
import { StartupError } from '../errors.ts';
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
  start(): Promise<void>;
  stop(): void;
}

export class FileIssuerKeys implements IssuerKeys {
  readonly issuer: string;
  readonly #config: IssuerConfig;
  #set: KeySet = new KeySet([]);
  #loaded = false;
  readonly skipped: string[] = [];

  constructor(config: IssuerConfig) {
    this.issuer = config.issuer;
    this.#config = config;
  }

  async start(): Promise<void> {
    const file = this.#config.jwks_file!;
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new StartupError(`issuer ${this.issuer}: jwks_file ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const { set, skipped } = await importJwks(doc, this.#config.algorithms);
      this.skipped.push(...skipped);
      if (set.size === 0) throw new Error(`no usable key${skipped.length ? `: ${skipped.join('; ')}` : ''}`);
      this.#set = set;
      this.#loaded = true;
    } catch (err) {
      throw new StartupError(`issuer ${this.issuer}: jwks_file ${file}: ${(err as Error).message}`, { cause: err });
    }
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
