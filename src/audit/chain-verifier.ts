/**
 * Checks an audit hash chain line by line (SPEC §12), for `jitgate audit verify`. Fed one line at a
 * time (no line is kept beyond the previous one of each chain), so a file of any size verifies in
 * bounded memory. The format it checks is written by src/observability/audit-chain.ts.
 *
 * What counts as broken (every one found is counted; the first is the answer):
 * - a line's `seq` is not the previous `seq` + 1: a line was removed (gap), inserted or reordered;
 * - a line's `prev` is not the SHA-256 of the previous line of its chain: that previous line was
 *   changed (or this line's `prev` was);
 * - a line that carries audit fields (`"type":"audit"`, `decision`, `seq`, `prev`, `checkpoint`) but
 *   is not a chain line, once the chain began (with `--jwks`: also before it) — inserted by hand;
 *   likewise such a line that is not exactly one JSON object (a BOM, bytes after it) or repeats a
 *   key (JSON.parse keeps the last one, another reader the first);
 * - a line longer than MAX_LINE_BYTES (never written by the gate; not read);
 * - a new chain of an id that starts no later than the previous chain of that id ended (by `time`):
 *   copied lines, a file given twice, files out of order;
 * - a checkpoint line that is not exactly the line its signed values and constants make;
 * - a cluster run (its workers' chain_start lines name it and how many workers it started) that
 *   stopped gracefully, a final checkpoint showing it, without a chain_start of every worker w1…wN
 *   in it: one worker's lines of that run were removed, which leaves each chain intact on its own;
 * - a chain whose first line in the files given is not its `chain_start` "new" at seq 0: its head
 *   was removed (or a rotated file was given without its predecessors; `allowMidChain` makes that a
 *   note);
 * - with keys (`--jwks`): a checkpoint whose signature does not verify; lines after the last valid
 *   checkpoint of a chain, at the end (a cut tail) or before a `chain_start` "continued" (a restart:
 *   the gate continues from whatever the file's last line is, so a checkpoint written after the
 *   restart covers those lines by hash but nobody vouches that the gate wrote them); and a chain
 *   that ends, or restarts, at a checkpoint other than the `final` one a graceful stop writes (a
 *   file cut right after a periodic checkpoint, or a gate killed there) — reported as not vouched.
 * - a line the verifier would skip that some reader reads as an audit record (line-shape.ts): audit
 *   keys in it once its JSON escapes are decoded, whether it is one object with whitespace around it,
 *   a BOM or a second value, or holds a character a reader ends lines at;
 * - with keys: a torn last line (no newline, not one JSON object) that reads as an audit record: not vouched.
 * Not broken, only reported: lines that are not JSON and do not look like audit lines (other output
 * mixed in, a torn last line), a new chain started later by a gate that could not continue the
 * file's chain, and without keys audit lines before the chain begins.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { verifyCheckpoint } from '../observability/audit-checkpoint.ts';
import { GENESIS } from '../observability/audit-chain.ts';
import { MAX_LINE_BYTES } from './line-reader.ts';
import { hasDuplicateKeys } from '../core/json-duplicates.ts';
import { parseJson } from '../core/json-parse.ts';
import { holdsAuditTypeMember, looksLikeAudit, suspectLine } from './line-shape.ts';

export interface Location {
  readonly file: string;
  readonly line: number;
  readonly seq?: number;
  readonly chain?: string;
}

export interface Finding extends Location {
  readonly message: string;
}

/** `line N` for a line of the file a finding is in, else `FILE:N`: a chain runs across rotated files. */
export function lineRef(ref: Location, here: Location): string {
  return ref.file === here.file ? `line ${ref.line}` : `${ref.file}:${ref.line}`;
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
  /** The chain's last line is a valid checkpoint a graceful stop wrote (`final`; with keys only). */
  final: boolean;
  /** The last line's `time` (ISO 8601 UTC, so ordered as text), when it had one. */
  time: string | undefined;
  /**
   * Links in a row, up to the last line, whose prev did not match the line before: which line changed
   * is told when the run ends (settleLinks).
   */
  brokenLinks: BrokenLinks | undefined;
}

/** A run of consecutive broken links: `lines[0]` is the line before the first, then each line after a broken link. */
interface BrokenLinks {
  readonly lines: Array<{ readonly at: Location; readonly seq: number }>;
}

/** One cluster run (its chain_start lines name it): the worker chains it must hold, and those seen. */
interface RunState {
  readonly workers: number;
  readonly chains: Set<string>;
  /** Its first chain_start. */
  readonly at: Location;
  /** A final checkpoint of one of its chains: the run stopped gracefully, so every worker had started. */
  final: Location | undefined;
}

/** At most this many findings of each kind are kept; the counts stay exact. */
const KEEP = 50;
/**
 * Chains (one per cluster worker slot) and cluster runs (one per start) a log can hold. Each costs
 * state for the whole verification, so a forged file naming millions of them ran the verifier out of
 * memory (5.5M chain ids in 1.3 GB); a gate's log holds a handful of chains and a run per start.
 */
export const MAX_CHAINS = 4096;
export const MAX_RUNS = 65_536;
/** Worker chains over all runs (each run holds the ids of the chains seen in it). */
export const MAX_RUN_CHAINS = 1_000_000;

export interface VerifyOptions {
  /** A chain may begin after seq 0 (a rotated file checked without its predecessors): a note, not broken. */
  readonly allowMidChain?: boolean;
}

export class ChainVerifier {
  readonly #keys: ReadonlyMap<string, KeyObject> | undefined;
  readonly #allowMidChain: boolean;
  readonly #chains = new Map<string, ChainState>();
  /**
   * Chain id → the chain a `chain_start` "new" replaced, and where that start was: a later line that
   * continues the replaced chain shows the new one was spliced into its middle.
   */
  readonly #replaced = new Map<string, { readonly chain: ChainState; readonly start: Location; readonly run: string | undefined }>();
  readonly #runs = new Map<string, RunState>();
  /** Chain id → the run its latest chain_start named. */
  readonly #runOf = new Map<string, string>();
  /** The last audit-looking line outside any chain before the first chain began (without keys only counted). */
  #unchainedBefore: Location | undefined;
  readonly broken: Finding[] = [];
  readonly notes: Finding[] = [];
  readonly unvouched: Finding[] = [];
  brokenCount = 0;
  /** Chain ids with a broken line of their own: a run missing their chain_start was damaged there, which names it. */
  readonly #brokenChains = new Set<string>();
  unvouchedCount = 0;
  linesRead = 0;
  chainLines = 0;
  nonJson = 0;
  checkpointsValid = 0;
  unchainedBeforeChain = 0;
  /** A line that reads as an audit line but does not parse, waiting for the next line's verdict. */
  #torn: (Location & { why: string }) | undefined;
  /** Chain lines and runs past MAX_CHAINS / MAX_RUNS / MAX_RUN_CHAINS (reported once). */
  #overflow = 0;
  #runChains = 0;
  /** Files in the order given: findings are reported in file order, though some are only told later (a torn line, a run of broken links). */
  readonly #fileOrder = new Map<string, number>();

  /** `keys`: public Ed25519 keys by kid (audit-checkpoint.ts checkpointKeys); checkpoints are then verified. */
  constructor(keys?: ReadonlyMap<string, KeyObject>, options: VerifyOptions = {}) {
    this.#keys = keys;
    this.#allowMidChain = options.allowMidChain === true;
  }

  get chains(): ReadonlyMap<string, Readonly<ChainState>> {
    return this.#chains;
  }

  /**
   * One line: its bytes without the "\n" (a string is taken as UTF-8). `last`: the file's final line
   * and the file does not end in a newline. `tooLong`: the reader did not keep its bytes.
   */
  line(bytes: Buffer | string, file: string, line: number, last = false, tooLong = false): void {
    this.linesRead++;
    if (!this.#fileOrder.has(file)) this.#fileOrder.set(file, this.#fileOrder.size);
    const torn = this.#torn;
    this.#torn = undefined;
    if (tooLong || bytes.length === 0) {
      if (torn !== undefined) this.#settleTorn(torn, undefined);
    }
    if (tooLong) {
      this.#broken({ file, line }, `a line longer than ${MAX_LINE_BYTES} bytes: the gate never writes one; not read`);
      return;
    }
    if (bytes.length === 0) return;
    const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
    // Every line is parsed, whatever it starts with: JSON.parse, like any reader, skips whitespace
    // around the value (the gate writes none, so such a line is never a chain line's bytes).
    let v: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = parseJson(text);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) v = parsed as Record<string, unknown>;
    } catch {
      // reported below
    }
    if (torn !== undefined) this.#settleTorn(torn, file === torn.file ? v : undefined);
    if (v === undefined) {
      this.nonJson++;
      const why = suspectLine(bytes, text, undefined);
      if (last) this.#tornTail({ file, line }, why !== undefined);
      else if (why !== undefined) this.#torn = { file, line, why }; // judged by the next line: a torn line the gate ended?
      else this.#note({ file, line }, 'not a JSON line; skipped (not part of the chain)');
      return;
    }
    const seq = v.seq;
    const chainShaped = Number.isSafeInteger(seq) && typeof v.prev === 'string' && v.type === 'audit';
    // Not a chain line: skipped only when no reader could find an audit record in it (line-shape.ts).
    const why = chainShaped || looksLikeAudit(v) ? undefined : suspectLine(bytes, text, v);
    if (chainShaped || looksLikeAudit(v) || why !== undefined || holdsAuditTypeMember(text)) {
      const repeated = repeatedKey(text, v);
      if (repeated !== undefined) {
        this.#broken({ file, line }, repeated === 'deep' ? 'a line nested too deeply to check for repeated keys: the gate never writes one (forged)' : 'a key appears twice in this line: JSON readers disagree on which one counts (forged)');
        return;
      }
    }
    if (!chainShaped) {
      if (looksLikeAudit(v)) this.#unchained({ file, line }, 'an audit line without seq/prev inside the chain: inserted, or written by a gate without log.audit_chain');
      else if (why !== undefined) this.#unchained({ file, line }, `a line that is not a chain line but holds ${why}: inserted`);
      return;
    }
    this.#chainLine(v, seq as number, v.prev as string, bytes, text, { file, line, seq: seq as number, chain: typeof v.chain === 'string' ? v.chain : undefined });
  }

  /**
   * A line that reads as an audit line but does not parse is refused, unless it is the torn last
   * line of a crashed gate: then the restarted gate's chain_start, the very next line, says it ended
   * it. Even so nothing vouches for its content (with keys: not vouched; without: a note).
   */
  #settleTorn(at: Location & { why: string }, next: Record<string, unknown> | undefined): void {
    if (next?.type === 'audit' && next.event === 'chain_start' && next.ended_torn_line === true) {
      const message = 'a torn line (a write cut short by a crash), ended by the restarted gate on the next line; not checked';
      if (this.#keys === undefined) this.#note(at, message);
      else this.#notVouched({ ...at, message: `${message}, so nothing vouches for it` });
    } else {
      this.#unchained(at, `a line that reads as an audit line but is not exactly one JSON object (a BOM before it, bytes after it, a record spread over lines, or damage): ${at.why}`);
    }
  }

  /**
   * The file's last line, without its newline, and not one JSON object: a write cut short by a crash.
   * If it reads as an audit record, nothing vouches for it: with keys it is reported like any line
   * after the last checkpoint (a graceful stop never leaves one); without keys, as a note.
   */
  #tornTail(at: Location, auditLike: boolean): void {
    const message = 'the last line is incomplete (no newline, not one JSON object): a write cut short, e.g. by a crash; not checked';
    if (auditLike && this.#keys !== undefined) this.#notVouched({ ...at, message: `${message}, and it reads as an audit line that nothing vouches for` });
    else this.#note(at, message);
  }

  /** An audit line outside the chain: before any chain and without keys only counted (audit_chain turned on later). */
  #unchained(at: Location, message: string): void {
    if (this.#chains.size > 0) this.#broken(at, message);
    else if (this.#keys !== undefined) this.#broken(at, `${message}; it comes before the chain begins, so no checkpoint can vouch for it`);
    else {
      this.unchainedBeforeChain++;
      this.#unchainedBefore = at;
    }
  }

  #chainLine(v: Record<string, unknown>, seq: number, prev: string, bytes: Buffer | string, text: string, at: Location): void {
    this.chainLines++;
    const id = at.chain ?? '';
    if (this.#chains.size >= MAX_CHAINS && !this.#chains.has(id)) {
      if (this.#overflow++ === 0) this.#broken(at, `a chain beyond the ${MAX_CHAINS}th chain id in these files: no gate writes that many (one per worker); lines of further chain ids are not checked`);
      return;
    }
    const hash = createHash('sha256').update(bytes).digest('hex');
    const time = typeof v.time === 'string' ? v.time : undefined;
    let s = this.#chains.get(id);
    const fresh = (): ChainState => ({ seq, hash, at, lines: 1, checkpoints: 0, vouched: undefined, unvouched: 1, final: false, time, brokenLinks: undefined });
    if (v.event === 'chain_start' && v.start === 'new') {
      if (seq !== 0 || prev !== GENESIS) this.#broken(at, `a new chain must start at seq 0 with prev ${GENESIS.slice(0, 8)}…; this one does not`);
      if (s !== undefined) {
        this.#settleLinks(s);
        this.#finish(id, s);
        // A gate starts a new chain after the old one's last line, so later; a copy of old lines, a file given twice or files out of order start earlier.
        if (time === undefined || s.time === undefined || time <= s.time) {
          this.#broken(at, `a new chain starts at ${time ?? 'no time'}, not after the previous chain of this id ended (${lineRef(s.at, at)}, ${s.time ?? 'no time'}): lines copied or repeated, a file given twice, or files out of order`);
        } else {
          this.#note(at, `a new chain starts here (the gate did not continue the previous one, e.g. log.destination changed); the previous one ends at ${lineRef(s.at, at)} (seq ${s.seq})`);
        }
        this.#replaced.set(id, { chain: s, start: at, run: this.#runOf.get(id) });
      }
      this.#chains.set(id, fresh());
      this.#joinRun(v, id, at);
      return;
    }
    if (s === undefined) {
      // A chain's first line is its chain_start "new" at seq 0 (above); anything else here means the lines before it are missing.
      const missing = `the chain begins at seq ${seq}, not with its chain_start at seq 0: the lines before it are not in the files given`;
      const damaged = this.#unchainedBefore;
      if (this.#allowMidChain) this.#note(at, `${missing} (--allow-mid-chain)`);
      else if (damaged !== undefined && damaged.file === at.file) {
        // The audit-looking line just before is where the head went: changed so that it no longer reads as a chain line.
        this.#broken(damaged, `this line reads as an audit line but is not a chain line, and the chain then begins at seq ${seq} (line ${at.line}) instead of at seq 0: its first line(s) were damaged or removed here`);
      } else this.#broken(at, `${missing} — removed from the head of the file, or a rotated file given without the files before it (give them all, oldest first, or check from here on with --allow-mid-chain)`);
      s = fresh();
      this.#chains.set(id, s);
    } else {
      const expected = s.seq + 1;
      const linkBroken = seq === expected && prev !== s.hash;
      const signedHash = v.event === 'checkpoint' ? (v.checkpoint as { hash?: unknown } | null | undefined)?.hash : undefined;
      if (linkBroken && signedHash === s.hash) {
        // A checkpoint names the hash of the line before it (what it signs): that line is intact, so
        // this one's prev was changed (the intact line used to be named, a valid final checkpoint's too).
        this.#settleLinks(s);
        this.#broken(at, `this line's prev was changed: the checkpoint it carries names the hash of the line before it (${lineRef(s.at, at)}, seq ${s.seq}), which its prev does not`);
      } else if (linkBroken && s.brokenLinks !== undefined) s.brokenLinks.lines.push({ at, seq });
      else if (linkBroken) s.brokenLinks = { lines: [{ at: s.at, seq: s.seq }, { at, seq }] };
      else this.#settleLinks(s);
      // A restart continues from whatever the file's last line is; the lines since the last checkpoint stay unvouched for good.
      if (v.event === 'chain_start' && (s.unvouched > 0 || !s.final)) this.#restarted(id, s, at);
      const replaced = this.#replaced.get(id);
      if ((seq !== expected || prev !== s.hash) && replaced !== undefined && seq === replaced.chain.seq + 1 && prev === replaced.chain.hash) {
        // The chain a new one replaced goes on here. Which is the intruder the hashes cannot say (a
        // prev is a plain SHA-256 anyone can compute): the new chain spliced in, or this line added
        // to the old one. Both are named; the old chain is followed from here, so the rest of a
        // spliced file adds no second finding.
        this.#replaced.delete(id);
        this.#broken(
          at,
          `this line continues the chain that ended at ${lineRef(replaced.chain.at, at)} (seq ${replaced.chain.seq}) before a new chain began at ${lineRef(replaced.start, at)}: either that new chain (${lineRef(replaced.start, at)} to ${lineRef(s.at, at)}, ${s.lines} line(s)) was spliced into the old one, or this line was added to the old one`,
        );
        s = replaced.chain;
        this.#chains.set(id, s);
        if (replaced.run === undefined) this.#runOf.delete(id);
        else this.#runOf.set(id, replaced.run);
      } else if (seq !== expected) {
        this.#broken(
          at,
          seq > expected
            ? `seq ${seq} follows seq ${s.seq} (${lineRef(s.at, at)}): ${seq - expected === 1 ? `the line with seq ${expected} is` : `lines with seq ${expected}–${seq - 1} are`} missing here (removed or moved)`
            : `seq ${seq} follows seq ${s.seq} (${lineRef(s.at, at)}): a line was inserted or lines were reordered`,
        );
      }
      s.seq = seq;
      s.hash = hash;
      s.at = at;
      s.time = time;
      s.lines++;
      s.unvouched++;
      s.final = false;
    }
    if (v.event === 'chain_start') this.#joinRun(v, id, at);
    if (v.event === 'checkpoint') this.#checkpoint(v, s, prev, text, at);
  }

  /** A chain_start naming a cluster run (`run`, `workers`): this chain is one of that run's. */
  #joinRun(v: Record<string, unknown>, id: string, at: Location): void {
    const run = v.run;
    const workers = v.workers;
    if (typeof run !== 'string' || typeof workers !== 'number' || !Number.isSafeInteger(workers) || workers < 1) {
      this.#runOf.delete(id);
      return;
    }
    if (workers > MAX_CHAINS) {
      // A 590-byte file naming 2^53 workers once made the run check list every one of them (out of memory).
      this.#broken(at, `a cluster run naming ${workers} workers: no gate starts more than ${MAX_CHAINS}`);
      this.#runOf.delete(id);
      return;
    }
    let r = this.#runs.get(run);
    if (r === undefined) {
      if (this.#runs.size >= MAX_RUNS) {
        if (this.#overflow++ === 0) this.#broken(at, `a cluster run beyond the ${MAX_RUNS}th in these files: not a log a gate wrote; further runs are not checked`);
        this.#runOf.delete(id);
        return;
      }
      this.#runs.set(run, (r = { workers, chains: new Set(), at, final: undefined }));
    }
    if (!r.chains.has(id)) {
      if (this.#runChains >= MAX_RUN_CHAINS) {
        if (this.#overflow++ === 0) this.#broken(at, `more than ${MAX_RUN_CHAINS} worker chains over all cluster runs: not a log a gate wrote; further ones are not checked`);
        this.#runOf.delete(id);
        return;
      }
      this.#runChains++;
      r.chains.add(id);
    }
    this.#runOf.set(id, run);
  }

  /**
   * Each worker of a cluster writes its own chain, so removing all of one worker's lines of a run
   * leaves every chain intact: its previous run's final checkpoint looks like where it stopped. A run
   * that stopped gracefully had started all its workers, so each must have a chain_start in it.
   */
  #checkRuns(): void {
    for (const [id, r] of this.#runs) {
      if (r.final === undefined) continue;
      const missing: string[] = [];
      let count = 0;
      for (let i = 1; i <= r.workers; i++) {
        // A chain broken elsewhere is reported there: an edited chain_start (not read as one) was otherwise named
        // first by this check, at the run's first line or an earlier final checkpoint (an auditor's probe).
        if (r.chains.has(`w${i}`) || this.#brokenChains.has(`w${i}`)) continue;
        if (count++ < 10) missing.push(`w${i}`);
      }
      if (count === 0) continue;
      // Reported where it shows, at the final checkpoint: at the run's first line it came before, and was
      // named first instead of, an edited chain_start of the run (an auditor's probe).
      this.#broken(
        r.final,
        `cluster run ${id} (begun at ${lineRef(r.at, r.final)}) started ${r.workers} workers and stopped gracefully at this final checkpoint, but chain ${missing.join(', ')}${count > missing.length ? ` and ${count - missing.length} more` : ''} has no chain_start in it: that worker's lines of this run were removed`,
      );
    }
  }

  #checkpoint(v: Record<string, unknown>, s: ChainState, prev: string, text: string, at: Location): void {
    s.checkpoints++;
    const c = v.checkpoint as Record<string, unknown> | undefined;
    if (typeof c !== 'object' || c === null || typeof c.sig !== 'string' || typeof c.time !== 'string' || c.seq !== (at.seq ?? 0) - 1 || c.hash !== prev || !Number.isSafeInteger(v.pid)) {
      this.#broken(at, 'a checkpoint line whose fields do not match its place in the chain (forged or altered)');
      return;
    }
    // Every value of the line is signed or a constant, so the line must be exactly what they make:
    // nothing in it (the last checkpoint is covered by no later prev) can be edited or added.
    const kid = typeof c.kid === 'string' ? c.kid : undefined;
    const final = c.final === true;
    const rebuilt = JSON.stringify({ level: 'info', time: c.time, pid: v.pid, type: 'audit', event: 'checkpoint', checkpoint: { seq: c.seq, hash: c.hash, time: c.time, final: final || undefined, kid, sig: c.sig }, chain: at.chain, seq: at.seq, prev });
    if (text !== rebuilt) {
      this.#broken(at, 'a checkpoint line holding more or other than what its signature covers (fields added or edited)');
      return;
    }
    const keys = this.#keys;
    if (keys === undefined) {
      if (final) this.#finalOfRun(at);
      return;
    }
    const key = keys.get(kid ?? '') ?? (keys.size === 1 && kid === undefined ? [...keys.values()][0] : undefined);
    if (key === undefined) {
      this.#broken(at, `a checkpoint signed by kid ${JSON.stringify(kid ?? '')}, which is not in the JWKS given`);
      return;
    }
    if (!verifyCheckpoint(key, at.chain ?? '', c.seq as number, c.hash, c.time, v.pid as number, final, c.sig)) {
      this.#broken(at, 'the checkpoint signature does not verify: the checkpoint was forged or the lines it covers were rewritten');
      return;
    }
    this.checkpointsValid++;
    s.vouched = at;
    s.unvouched = 0;
    s.final = final;
    // With keys, only a final checkpoint whose signature verified says the run stopped gracefully.
    if (final) this.#finalOfRun(at);
  }

  /** A final checkpoint of a cluster run's chain: that run stopped gracefully, so every worker had started. */
  #finalOfRun(at: Location): void {
    const run = this.#runs.get(this.#runOf.get(at.chain ?? '') ?? '');
    if (run !== undefined) run.final ??= at;
  }

  /** Call after the last line of the last file. */
  end(): void {
    if (this.#torn !== undefined) this.#settleTorn(this.#torn, undefined);
    this.#torn = undefined;
    for (const s of this.#chains.values()) this.#settleLinks(s);
    for (const [id, s] of this.#chains) this.#finish(id, s);
    this.#checkRuns();
    const order = (f: Finding): number => this.#fileOrder.get(f.file) ?? Number.MAX_SAFE_INTEGER;
    const byPosition = (a: Finding, b: Finding): number => order(a) - order(b) || a.line - b.line;
    this.broken.sort(byPosition);
    this.unvouched.sort(byPosition);
  }

  #finish(id: string, s: ChainState): void {
    if (this.#keys === undefined) return;
    if (s.unvouched > 0) this.#unvouched(id, s, `${this.#since(s)}; the tail may have been cut`);
    else if (!s.final) this.#notFinal(id, s, 'the chain ends here: lines after it may have been cut (or the gate is still running, or was killed)');
  }

  /**
   * A `chain_start` "continued" at `at` after anything but a graceful stop's final checkpoint: what
   * the chain held since its last valid checkpoint is unvouched for good.
   */
  #restarted(id: string, s: ChainState, at: Location): void {
    if (this.#keys !== undefined) {
      const restart = `the gate restarted (chain_start at ${lineRef(at, s.at)})`;
      if (s.unvouched > 0) {
        this.#unvouched(id, s, `${this.#since(s)} and before ${restart}: a restart continues from the file's last line as it finds it, so later checkpoints cover these lines by hash but cannot vouch that the gate wrote them (a crash, or lines added while it was down)`);
      } else {
        this.#notFinal(id, s, `${restart} after it: the gate was killed there, or lines after it were removed while it was down`);
      }
    }
    s.unvouched = 0;
  }

  /** The chain's last line is a valid periodic checkpoint where a graceful stop's final one was due. */
  #notFinal(id: string, s: ChainState, what: string): void {
    this.#notVouched({ ...s.at, chain: id === '' ? undefined : id, message: `a periodic checkpoint, not the final one a graceful stop writes; ${what}` });
  }

  #since(s: ChainState): string {
    return s.vouched === undefined ? 'no valid checkpoint vouches for any of its lines' : `after the last valid checkpoint (${lineRef(s.vouched, s.at)}, seq ${s.vouched.seq})`;
  }

  #unvouched(id: string, s: ChainState, why: string): void {
    this.#notVouched({ ...s.at, chain: id === '' ? undefined : id, message: `${s.unvouched} chain line(s) ending here cannot be vouched for: ${why}` });
  }

  #notVouched(f: Finding): void {
    this.unvouchedCount++;
    if (this.unvouched.length < KEEP) this.unvouched.push(f);
  }

  /**
   * A run of broken links ended (an intact link, another finding, the chain's end): which line
   * changed. One broken link: the line before it (its bytes no longer hash to the next line's prev),
   * or that next line's prev alone. Two in a row: the line between them — its prev does not match the
   * line before, and its own hash is not the next line's prev — which is what editing one line's prev
   * does (before 2026-12-07 night the intact line before it was named). Three or more: the run is
   * named from its first line, and the message says what the hashes cannot tell apart (every line
   * changed, as with converted line endings, or several prevs edited).
   */
  #settleLinks(s: ChainState): void {
    const run = s.brokenLinks?.lines;
    s.brokenLinks = undefined;
    if (run === undefined) return;
    const [first, second, third] = run;
    if (run.length === 2) {
      this.#broken(first!.at, `this line does not hash to the prev of the next line of its chain (${lineRef(second!.at, first!.at)}, seq ${second!.seq}): it was changed (or that line's prev was)`);
    } else if (run.length === 3) {
      this.#broken(
        second!.at,
        `this line was changed: its prev does not match the line before it in its chain (${lineRef(first!.at, second!.at)}, seq ${first!.seq}), and the next line of its chain (${lineRef(third!.at, second!.at)}, seq ${third!.seq}) does not carry its hash (or both this line and the one before it were changed)`,
      );
    } else {
      const last = run[run.length - 2]!;
      this.#broken(
        first!.at,
        `${run.length - 1} links in a row are broken from this line on (to ${lineRef(last.at, first!.at)}, seq ${last.seq}, and the line after it): each of these lines was changed or the next line's prev was — every line (line endings converted, a block rewritten) or a few prevs edited; the hashes do not tell which`,
      );
    }
  }

  #broken(at: Location, message: string): void {
    this.brokenCount++;
    if (at.chain !== undefined) this.#brokenChains.add(at.chain);
    if (this.broken.length < KEEP) this.broken.push({ ...at, message });
  }

  #note(at: Location, message: string): void {
    if (this.notes.length < KEEP) this.notes.push({ ...at, message });
  }

  /** Intact: nothing broken, and with keys, every chain line vouched for by a checkpoint. */
  get ok(): boolean {
    return this.brokenCount === 0 && this.unvouchedCount === 0 && this.chainLines > 0;
  }
}

/** hasDuplicateKeys, with nesting deep enough to exhaust the stack told apart, never a crash. */
function repeatedKey(text: string, v: unknown): 'twice' | 'deep' | undefined {
  try {
    return hasDuplicateKeys(text, v) ? 'twice' : undefined;
  } catch {
    return 'deep';
  }
}
