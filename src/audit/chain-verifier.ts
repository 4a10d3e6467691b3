/**
 * Checks an audit hash chain line by line (SPEC §12), for `jitgate audit verify`. Fed one line at a
 * time (no line is kept beyond the previous one of each chain), so a file of any size verifies in
 * bounded memory. The format it checks is written by src/observability/audit-chain.ts.
 *
 * What counts as broken (the first one found is the answer):
 * - a line's `seq` is not the previous `seq` + 1: a line was removed (gap), inserted or reordered;
 * - a line's `prev` is not the SHA-256 of the previous line of its chain: that previous line was
 *   changed (or this line's `prev` was);
 * - an audit line without `seq`/`prev` after the chain began: inserted by hand;
 * - with keys (`--jwks`): a checkpoint whose signature does not verify, and, at the end, lines after
 *   the last valid checkpoint of a chain — nothing vouches for them, so a cut tail cannot hide.
 * Not broken, only reported: lines that are not JSON (other output mixed in, a torn last line), a
 * chain that begins mid-way (the files given start after its first line), a new chain started by a
 * gate that could not continue the file's chain.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { verifyCheckpoint } from '../observability/audit-checkpoint.ts';
import { GENESIS } from '../observability/audit-chain.ts';

export interface Location {
  readonly file: string;
  readonly line: number;
  readonly seq?: number;
  readonly chain?: string;
}

export interface Finding extends Location {
  readonly message: string;
}

interface ChainState {
  seq: number;
  hash: string;
  at: Location;
  lines: number;
  checkpoints: number;
  /** The last line a valid checkpoint vouches for (with keys), and lines written after it. */
  vouched: Location | undefined;
  unvouched: number;
}

/** At most this many findings of each kind are kept; the counts stay exact. */
const KEEP = 50;

export class ChainVerifier {
  readonly #keys: ReadonlyMap<string, KeyObject> | undefined;
  readonly #chains = new Map<string, ChainState>();
  readonly broken: Finding[] = [];
  readonly notes: Finding[] = [];
  readonly unvouched: Finding[] = [];
  brokenCount = 0;
  linesRead = 0;
  chainLines = 0;
  nonJson = 0;
  checkpointsValid = 0;
  unchainedBeforeChain = 0;

  /** `keys`: public Ed25519 keys by kid (audit-checkpoint.ts checkpointKeys); checkpoints are then verified. */
  constructor(keys?: ReadonlyMap<string, KeyObject>) {
    this.#keys = keys;
  }

  get chains(): ReadonlyMap<string, Readonly<ChainState>> {
    return this.#chains;
  }

  /** One line without its newline. `last`: the file's final line and the file does not end in a newline. */
  line(text: string, file: string, line: number, last = false): void {
    this.linesRead++;
    if (text === '') return;
    let v: Record<string, unknown> | undefined;
    if (text.charCodeAt(0) === 0x7b /* { */) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) v = parsed as Record<string, unknown>;
      } catch {
        // reported below
      }
    }
    if (v === undefined) {
      this.nonJson++;
      this.#note({ file, line }, last ? 'the last line is incomplete (no newline, not JSON): a write cut short, e.g. by a crash; not checked' : 'not a JSON line; skipped (not part of the chain)');
      return;
    }
    const seq = v.seq;
    if (!Number.isSafeInteger(seq) || typeof v.prev !== 'string') {
      if (v.type === 'audit') {
        if (this.#chains.size === 0) this.unchainedBeforeChain++;
        else this.#broken({ file, line }, 'an audit line without seq/prev inside the chain: inserted, or written by a gate without log.audit_chain');
      }
      return;
    }
    this.#chainLine(v, seq as number, v.prev, text, { file, line, seq: seq as number, chain: typeof v.chain === 'string' ? v.chain : undefined });
  }

  #chainLine(v: Record<string, unknown>, seq: number, prev: string, text: string, at: Location): void {
    this.chainLines++;
    const id = at.chain ?? '';
    const hash = createHash('sha256').update(text).digest('hex');
    let s = this.#chains.get(id);
    const fresh = (): ChainState => ({ seq, hash, at, lines: 1, checkpoints: 0, vouched: undefined, unvouched: 1 });
    if (v.event === 'chain_start' && v.start === 'new') {
      if (seq !== 0 || prev !== GENESIS) this.#broken(at, `a new chain must start at seq 0 with prev ${GENESIS.slice(0, 8)}…; this one does not`);
      if (s !== undefined) {
        this.#finish(id, s);
        this.#note(at, `a new chain starts here (the gate did not continue the previous one, e.g. log.destination changed); the previous one ends at line ${s.at.line} (seq ${s.seq})`);
      }
      this.#chains.set(id, fresh());
      return;
    }
    if (s === undefined) {
      if (seq !== 0) this.#note(at, `the chain begins at seq ${seq}: its earlier lines are not in the files given (a rotated file?)`);
      s = fresh();
      this.#chains.set(id, s);
    } else {
      const expected = s.seq + 1;
      if (seq !== expected) {
        this.#broken(
          at,
          seq > expected
            ? `seq ${seq} follows seq ${s.seq} (line ${s.at.line}): ${seq - expected === 1 ? `the line with seq ${expected} is` : `lines with seq ${expected}–${seq - 1} are`} missing here (removed or moved)`
            : `seq ${seq} follows seq ${s.seq} (line ${s.at.line}): a line was inserted or lines were reordered`,
        );
      } else if (prev !== s.hash) {
        this.#broken(s.at, `this line does not hash to the prev of the next line of its chain (line ${at.line}, seq ${seq}): it was changed (or that line's prev was)`);
      }
      s.seq = seq;
      s.hash = hash;
      s.at = at;
      s.lines++;
      s.unvouched++;
    }
    if (v.event === 'checkpoint') this.#checkpoint(v, s, prev, at);
  }

  #checkpoint(v: Record<string, unknown>, s: ChainState, prev: string, at: Location): void {
    s.checkpoints++;
    const keys = this.#keys;
    if (keys === undefined) return;
    const c = v.checkpoint as Record<string, unknown> | undefined;
    const kid = typeof c?.kid === 'string' ? c.kid : '';
    const key = keys.get(kid) ?? (keys.size === 1 && kid === '' ? [...keys.values()][0] : undefined);
    if (c === undefined || typeof c.sig !== 'string' || typeof c.time !== 'string' || c.seq !== (at.seq ?? 0) - 1 || c.hash !== prev) {
      this.#broken(at, 'a checkpoint line whose fields do not match its place in the chain (forged or altered)');
      return;
    }
    if (key === undefined) {
      this.#broken(at, `a checkpoint signed by kid ${JSON.stringify(kid)}, which is not in the JWKS given`);
      return;
    }
    if (!verifyCheckpoint(key, at.chain ?? '', c.seq as number, c.hash, c.time, c.sig)) {
      this.#broken(at, 'the checkpoint signature does not verify: the checkpoint was forged or the lines it covers were rewritten');
      return;
    }
    this.checkpointsValid++;
    s.vouched = at;
    s.unvouched = 0;
  }

  /** Call after the last line of the last file. */
  end(): void {
    for (const [id, s] of this.#chains) this.#finish(id, s);
  }

  #finish(id: string, s: ChainState): void {
    if (this.#keys === undefined || s.unvouched === 0) return;
    const where = s.vouched === undefined ? 'no valid checkpoint vouches for any of its lines' : `after the last valid checkpoint (line ${s.vouched.line}, seq ${s.vouched.seq})`;
    const f = { ...s.at, chain: id === '' ? undefined : id, message: `${s.unvouched} chain line(s) ending here cannot be vouched for: ${where}; the tail may have been cut` };
    if (this.unvouched.length < KEEP) this.unvouched.push(f);
  }

  #broken(at: Location, message: string): void {
    this.brokenCount++;
    if (this.broken.length < KEEP) this.broken.push({ ...at, message });
  }

  #note(at: Location, message: string): void {
    if (this.notes.length < KEEP) this.notes.push({ ...at, message });
  }

  /** Intact: nothing broken, and with keys, every chain line vouched for by a checkpoint. */
  get ok(): boolean {
    return this.brokenCount === 0 && this.unvouched.length === 0 && this.chainLines > 0;
  }
}
