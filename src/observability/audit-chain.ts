/**
 * The hash chain over audit lines (SPEC §12, `log.audit_chain`). Each audit line gets
 * `"seq":n,"prev":"<hex>"` inserted before its closing brace, where `prev` is the SHA-256 of the
 * previous audit line's bytes as written (without the line's newline) and `seq` counts up by one.
 * Changing, removing, inserting or reordering a line breaks the chain at that line
 * (`jitgate audit verify`). Other log lines may sit between audit lines; they are not covered.
 *
 * Cost per line: one string concatenation and one SHA-256 over ~300 bytes (≈ 1 µs), in the
 * write call, with no await.
 *
 * Start: in a file destination the chain continues from the file's last line of this chain
 * (audit-tail.ts), so a restart leaves no gap; otherwise (stdout, an empty file) a new chain
 * starts at seq 0 with prev = 64 zeros. Either way the first line is `event: chain_start`, naming
 * how it started. Cluster workers share one file: each keeps its own chain, named by `chain`
 * ("w1", "w2"…), which every one of its lines carries.
 *
 * Checkpoints (`log.audit_checkpoint_key`): a line `event: checkpoint` signed over where the chain
 * stands (audit-checkpoint.ts), every 10 s while lines are written and at graceful shutdown.
 */
import { hash } from 'node:crypto';
import type { CheckpointSigner } from './audit-checkpoint.ts';
import { readChainTail } from './audit-tail.ts';

export const GENESIS = '0'.repeat(64);
/** SPEC §12: "a signed checkpoint line is written at least every 10 s". */
export const CHECKPOINT_EVERY_MS = 10_000;

/**
 * One start of a cluster (its primary): an id, and how many workers — chains w1…wN — it started. A
 * run that stopped gracefully must hold a chain_start of every one of them, so deleting one worker's
 * lines of a run is found even when nothing of that worker follows (src/audit/chain-verifier.ts).
 */
export interface ChainRun {
  readonly id: string;
  readonly workers: number;
}

export interface ChainOptions {
  /** `stdout`, `stderr` or a file path (log.destination). */
  readonly destination: string;
  /** Cluster worker chains are named; a single process's chain is not. */
  readonly chain?: string | undefined;
  /** A cluster worker's run: chain_start names it, so verify knows which chains a run must hold. */
  readonly run?: ChainRun | undefined;
  readonly signer?: CheckpointSigner;
  /** Writes an event line (through `link`); AuditLog.recordEvent. `time`: the line's outer time (ISO). */
  readonly emit: (fields: object, time?: string) => void;
  /** Writes raw text to the destination before anything else (a newline after a torn last line). */
  readonly writeRaw: (text: string) => void;
  readonly onCheckpoint?: () => void;
  readonly checkpointEveryMs?: number;
}

export class AuditChain {
  readonly #o: ChainOptions;
  readonly #idField: string;
  #seq = 0;
  #prev = GENESIS;
  #sinceCheckpoint = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ChainOptions) {
    this.#o = options;
    this.#idField = options.chain === undefined ? '' : `,"chain":${JSON.stringify(options.chain)}`;
  }

  /** The next line's seq. */
  get seq(): number {
    return this.#seq;
  }

  /**
   * `line` is a whole JSON line ending in `}` + `eol`; returns it with the chain fields inserted.
   * Synchronous and in write order: the chain's order is the file's order.
   */
  link(line: string, eolLength: number): string {
    const body = `${line.slice(0, line.length - eolLength - 1)}${this.#idField},"seq":${this.#seq},"prev":"${this.#prev}"}`;
    // crypto.hash: the one-shot form, without a Hash object per line (about half the cost for ~400 bytes).
    this.#prev = hash('sha256', body, 'hex');
    this.#seq++;
    this.#sinceCheckpoint++;
    return body + line.slice(line.length - eolLength);
  }

  /** Continues the file's chain or starts a new one; writes the chain_start line; starts the checkpoint timer. */
  async start(): Promise<void> {
    const o = this.#o;
    const file = o.destination === 'stdout' || o.destination === 'stderr' ? undefined : o.destination;
    // undefined: nothing to read back (stdout, stderr, a pipe or a device).
    const tail = file === undefined ? undefined : await readChainTail(file, o.chain);
    // End the torn line, never glue ours to it; chain_start says so, since verify refuses a line that
    // reads as an audit line but is not one unless the gate's own next line owns up to ending it.
    const torn = tail !== undefined && !tail.endsWithNewline;
    if (torn) o.writeRaw('\n');
    const ended = torn ? { ended_torn_line: true } : {};
    const run = o.run === undefined ? {} : { run: o.run.id, workers: o.run.workers };
    if (tail?.last !== undefined) {
      this.#seq = tail.last.seq + 1;
      this.#prev = tail.last.hash;
      o.emit({ event: 'chain_start', start: 'continued', after_seq: tail.last.seq, ...run, ...ended });
    } else {
      const why = tail === undefined ? `destination ${o.destination} cannot be read back` : tail.empty ? 'the file was empty' : 'no line of this chain found in the file';
      o.emit({ event: 'chain_start', start: 'new', why, ...run, ...ended });
    }
    if (o.signer !== undefined) {
      this.#timer = setInterval(() => {
        if (this.#sinceCheckpoint > 0) this.checkpoint();
      }, o.checkpointEveryMs ?? CHECKPOINT_EVERY_MS);
      this.#timer.unref();
    }
  }

  /**
   * Writes a signed checkpoint over every line so far (no-op without a key). `final`: the graceful
   * stop's, which says so in what it signs (audit-checkpoint.ts).
   */
  checkpoint(final = false): void {
    const signer = this.#o.signer;
    if (signer === undefined) return;
    const seq = this.#seq - 1;
    const hash = this.#prev;
    const time = new Date().toISOString();
    const sig = signer.sign(this.#o.chain ?? '', seq, hash, time, process.pid, final);
    // The outer time is the signed one: the verifier rebuilds the whole line from signed values.
    const checkpoint = final ? { seq, hash, time, final: true, kid: signer.kid, sig } : { seq, hash, time, kid: signer.kid, sig };
    this.#o.emit({ event: 'checkpoint', checkpoint }, time);
    this.#sinceCheckpoint = 0;
    this.#o.onCheckpoint?.();
  }

  /**
   * Graceful shutdown: the last line is the final checkpoint, so nothing before it can be cut
   * unnoticed — written even right after a periodic one, which alone would look like a cut there.
   */
  close(): void {
    if (this.#closed) return; // a failed start and a drain may both call it; one final checkpoint ends a run
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#closed = true;
    this.checkpoint(true);
  }
}
