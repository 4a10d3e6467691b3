/**
 * `jitgate audit verify FILE... [--jwks F]`: checks the hash chain of audit log files (SPEC §12).
 * Several files are read in the order given, as one log (rotated files, oldest first). Each is
 * streamed line by line (line-reader.ts: lines over 4 MiB are reported, not held), so a 1 GB file
 * is checked in bounded memory; on a terminal, progress goes to stderr. Exit 0 when the chain is intact
 * from its first line (with --jwks: and every line is vouched for by a signed checkpoint, the last
 * one a graceful stop's), 1 when it is not, 2 on a usage error or an unreadable file.
 *
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import { ChainVerifier, lineRef, type Finding } from '../audit/chain-verifier.ts';
import { MAX_LINE_BYTES, readLines } from '../audit/line-reader.ts';
import { checkpointKeys } from '../observability/audit-checkpoint.ts';
import { commandUsageError, parseCommand } from './args.ts';

const USAGE = `Usage: jitgate audit verify FILE... [--jwks F] [--allow-mid-chain]

Checks the hash chain of jitgate audit lines (log.audit_chain). FILEs are read in the order given,
as one log: pass rotated files oldest first. A chain must begin in them with its first line.

  --jwks F            a JWKS with the Ed25519 public key of log.audit_checkpoint_key: every
                      checkpoint's signature is checked, and a chain must end with the checkpoint
                      a graceful stop writes; lines after the last checkpoint are reported (exit 1)
  --allow-mid-chain   a chain may begin after its first line (a rotated file checked without the
                      files before it): a note instead of exit 1
  -h, --help          show this help

Exit 0: intact (prints how many lines were checked). Exit 1: broken, naming the first broken line
(file:line and seq). Exit 2: usage error or unreadable file.
`;

const PROGRESS_MS = 250;

function where(f: Finding): string {
  return `${f.file}:${f.line}${f.seq === undefined ? '' : ` (seq ${f.seq}${f.chain === undefined ? '' : `, chain ${f.chain}`})`}`;
}

async function verifyFiles(files: readonly string[], v: ChainVerifier): Promise<void> {
  const sizes = await Promise.all(
    files.map(async (f) => {
      const s = await stat(f);
      // A device (/dev/zero, a terminal) or a socket has no end or no size: refused, not read forever.
      // A FIFO is read to its end, as `verify <(cat a b)` needs.
      if (s.isDirectory()) throw new Error(`${f}: is a directory`);
      if (!s.isFile() && !s.isFIFO()) throw new Error(`${f}: not a regular file (a device or a socket)`);
      return s.size;
    }),
  );
  const total = sizes.reduce((a, b) => a + b, 0);
  const tty = process.stderr.isTTY === true;
  let done = 0;
  let shown = 0;
  let carry: { bytes: Buffer; tooLong: boolean; file: string; n: number } | undefined;
  for (const [i, file] of files.entries()) {
    const lastFile = i === files.length - 1;
    const progress = !tty
      ? undefined
      : (bytes: number): void => {
          done += bytes;
          const now = Date.now();
          if (now - shown >= PROGRESS_MS) {
            shown = now;
            // A FIFO has no size: then only what was read so far.
            const of = done <= total && total > 0 ? ` / ${(total / 1048576).toFixed(0)} MiB (${Math.floor((done / total) * 100)}%)` : ' MiB read';
            process.stderr.write(`\rchecking ${file}: ${(done / 1048576).toFixed(0)}${of}`);
          }
        };
    for await (const l of readLines(file, progress)) {
      let { bytes, tooLong } = l;
      let at = { file, n: l.n };
      if (carry !== undefined) {
        // The files are one log: a line the previous file ended without its newline goes on here, as `cat` joins it.
        at = { file: carry.file, n: carry.n };
        tooLong ||= carry.tooLong || carry.bytes.length + bytes.length > MAX_LINE_BYTES;
        bytes = tooLong ? Buffer.alloc(0) : Buffer.concat([carry.bytes, bytes]);
        carry = undefined;
      }
      if (l.torn && !lastFile) carry = { bytes, tooLong, ...at };
      else v.line(bytes, at.file, at.n, l.torn, tooLong);
    }
  }
  if (carry !== undefined) v.line(carry.bytes, carry.file, carry.n, true, carry.tooLong);
  if (tty) process.stderr.write('\r\x1b[K');
  v.end();
}

function report(v: ChainVerifier, files: readonly string[], withKeys: boolean): void {
  const out: string[] = [];
  out.push(`read ${v.linesRead} lines in ${files.length} file(s): ${v.chainLines} chain lines, ${v.nonJson} not JSON`);
  for (const [id, s] of v.chains) {
    const name = id === '' ? 'chain' : `chain ${id}`;
    const cp = withKeys ? `${s.checkpoints} checkpoint(s), ${s.vouched === undefined ? 'none valid' : `last valid at ${lineRef(s.vouched, s.at)}`}` : `${s.checkpoints} checkpoint(s), signatures not checked (no --jwks)`;
    out.push(`${name}: ${s.lines} lines up to seq ${s.seq} (${s.at.file}:${s.at.line}); ${cp}`);
  }
  if (v.unchainedBeforeChain > 0) out.push(`note: ${v.unchainedBeforeChain} audit line(s) before the chain begins are not covered by it`);
  for (const n of v.notes) out.push(`note: ${where(n)}: ${n.message}`);
  if (v.chainLines === 0) out.push('BROKEN: no chained audit line found (is log.audit_chain on?)');
  if (v.brokenCount > 0) {
    const first = v.broken[0]!;
    out.push(`BROKEN: first broken line ${where(first)}: ${first.message}`);
    for (const b of v.broken.slice(1)) out.push(`  also ${where(b)}: ${b.message}`);
    if (v.brokenCount > v.broken.length) out.push(`  … ${v.brokenCount - v.broken.length} more`);
  }
  for (const u of v.unvouched) out.push(`NOT VOUCHED: ${where(u)}: ${u.message}`);
  if (v.unvouchedCount > v.unvouched.length) out.push(`  … ${v.unvouchedCount - v.unvouched.length} more not vouched`);
  if (v.ok) out.push(`OK: ${v.chainLines} chain lines checked${withKeys ? `, ${v.checkpointsValid} checkpoint signature(s) valid` : ''}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] !== 'verify') {
    if (argv[0] === '--help' || argv[0] === '-h') {
      process.stdout.write(USAGE);
      return 0;
    }
    return usageError(argv[0] === undefined ? 'missing subcommand: verify' : `unknown subcommand "${argv[0]}"; expected verify`);
  }
  const rest = argv.slice(1);
  // By position: a --jwks value spelled like one of the files is still the flag's (a probe: filtering by
  // value took it from the flag, "argument missing").
  const isFile = rest.map((a, i) => !a.startsWith('-') && rest[i - 1] !== '--jwks');
  const files = rest.filter((_, i) => isFile[i]);
  const flags = rest.filter((_, i) => !isFile[i]);
  const values = parseCommand(flags, { jwks: { type: 'string' }, 'allow-mid-chain': { type: 'boolean' } }, USAGE, usageError);
  if (typeof values === 'number') return values;
  if (files.length === 0) return usageError('name at least one FILE');

  let keys;
  if (values.jwks !== undefined) {
    try {
      keys = checkpointKeys(JSON.parse(await readFile(values.jwks, 'utf8')));
    } catch (err) {
      process.stderr.write(`jitgate audit verify: --jwks ${values.jwks}: ${(err as Error).message}\n`);
      return 2;
    }
    if (keys.size === 0) {
      process.stderr.write(`jitgate audit verify: --jwks ${values.jwks}: no Ed25519 (OKP) key in it\n`);
      return 2;
    }
  }
  const v = new ChainVerifier(keys, { allowMidChain: values['allow-mid-chain'] === true });
  try {
    await verifyFiles(files, v);
  } catch (err) {
    process.stderr.write(`jitgate audit verify: ${(err as Error).message}\n`);
    return 2;
  }
  report(v, files, keys !== undefined);
  return v.ok ? 0 : 1;
}

function usageError(message: string): number {
  return commandUsageError('audit verify', message);
}
