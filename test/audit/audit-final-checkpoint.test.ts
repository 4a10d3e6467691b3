/**
 * SPEC §12 "a cut tail is detected": a graceful stop's checkpoint is signed as `final`, so a file cut
 * right after a periodic checkpoint (every 10 s in a running gate) is no longer taken for a file a
 * graceful stop closed. The chain is written by the real AuditLog and AuditChain into a real file —
 * checkpoints taken by hand, where a gate would take them on its timer — and checked by the real CLI.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deny } from '../../src/core/decision.ts';
import { AuditLog } from '../../src/observability/audit.ts';
import type { AuditChain } from '../../src/observability/audit-chain.ts';
import { loadCheckpointSigner } from '../../src/observability/audit-checkpoint.ts';
import { createLogger, flushWithin } from '../../src/observability/logger.ts';
import { chainIdx, parse, writeCheckpointKeys } from '../fixtures/audit-gate.ts';
import { runCli } from '../fixtures/cli.ts';

let dir: string;
let keyFile: string;
let jwks: string;
/** chain_start, 5 lines, periodic checkpoint, 5 lines, final checkpoint. */
let lines: string[];

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const text = (ls: string[]): string => `${ls.join('\n')}\n`;
const refusal = deny('path_not_granted', '/orders/x');

/**
 * A gate's audit run on `file`: `before` lines, a periodic checkpoint, `after` lines, a graceful
 * stop. Returns the file's lines as they stood just before the stop (what a SIGKILL leaves).
 */
async function run(file: string, before: number, after: number): Promise<string[]> {
  const logger = createLogger({ level: 'info', destination: file });
  const audit = new AuditLog(logger);
  const chain = (await audit.startChain({ destination: file, signer: await loadCheckpointSigner(keyFile) })) as AuditChain;
  const record = (): void => audit.record({ transport: 'proxy', method: 'GET', decision: refusal, status: 403, latencyMs: 0.1 });
  for (let i = 0; i < before; i++) record();
  chain.checkpoint();
  for (let i = 0; i < after; i++) record();
  await flushWithin(logger);
  const killed = (await readFile(file, 'utf8')).trimEnd().split('\n');
  audit.closeChain();
  await flushWithin(logger);
  return killed;
}

async function verify(name: string, ls: string[], withKeys = true) {
  const file = join(dir, name);
  await writeFile(file, text(ls));
  return { file, ...(await runCli(['audit', 'verify', file, ...(withKeys ? ['--jwks', jwks] : [])])) };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'jitgate-final-cp-'));
  ({ keyFile, jwks } = await writeCheckpointKeys(dir));
  const log = join(dir, 'audit.log');
  await run(log, 5, 5);
  lines = (await readFile(log, 'utf8')).trimEnd().split('\n');
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** `ls` with line `at` edited (`from` → `to`), verified with keys: exit 1, first BROKEN at that line with `message`. */
async function expectBrokenEdit(name: string, ls: string[], at: number, from: string, to: string, message: string): Promise<void> {
  const edited = [...ls];
  edited[at] = edited[at]!.replace(from, to);
  expect(edited[at]).not.toBe(ls[at]);
  const r = await verify(name, edited);
  expect(r.code).toBe(1);
  expect(r.stdout).toContain(`BROKEN: first broken line ${r.file}:${at + 1} (seq ${parse(ls[at]!)!.seq}): ${message}`);
}

/** File index of the periodic checkpoint and of the final one. */
function checkpoints(ls: string[]): { periodic: number; final: number } {
  const idx = chainIdx(ls).filter((i) => parse(ls[i]!)!.event === 'checkpoint');
  expect(idx).toHaveLength(2);
  return { periodic: idx[0]!, final: idx[1]! };
}

describe('final and periodic checkpoints', () => {
  it('case=the graceful stop writes the only checkpoint marked final; the intact file verifies', async () => {
    const { periodic, final } = checkpoints(lines);
    expect(parse(lines[periodic]!)!.checkpoint.final).toBeUndefined();
    expect(parse(lines[final]!)!.checkpoint).toMatchObject({ final: true, kid: 'audit-1' });
    expect(final).toBe(chainIdx(lines).at(-1));
    const r = await verify('intact.log', lines);
    expect(r.stdout).toContain('OK: 13 chain lines checked, 2 checkpoint signature(s) valid');
    expect(r.code).toBe(0);
  });

  it('case=a graceful stop right after a periodic checkpoint still ends with a final one', async () => {
    const log = join(dir, 'no-lines-after.log');
    await run(log, 3, 0);
    const ls = (await readFile(log, 'utf8')).trimEnd().split('\n');
    const { periodic, final } = checkpoints(ls);
    expect(final).toBe(periodic + 1);
    expect((await verify('no-lines-after.log', ls)).code).toBe(0);
  });

  it('case=the file cut right after the periodic checkpoint → NOT VOUCHED with --jwks (was taken for a graceful stop)', async () => {
    const { periodic } = checkpoints(lines);
    const cut = lines.slice(0, periodic + 1);
    expect((await verify('cut.log', cut, false)).code).toBe(0); // without keys nothing tells
    const r = await verify('cut.log', cut);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`NOT VOUCHED: ${r.file}:${periodic + 1} (seq ${parse(cut[periodic]!)!.seq}): a periodic checkpoint, not the final one a graceful stop writes; the chain ends here`);
  });

  it('case="final" added to the periodic checkpoint, or removed from the final one → the signature does not verify', async () => {
    const { periodic, final } = checkpoints(lines);
    await expectBrokenEdit('promoted.log', lines.slice(0, periodic + 1), periodic, '"kid":', '"final":true,"kid":', 'the checkpoint signature does not verify');
    await expectBrokenEdit('demoted.log', lines, final, '"final":true,', '', 'the checkpoint signature does not verify');
    await expectBrokenEdit('odd-final.log', lines, final, '"final":true', '"final":"yes"', 'a checkpoint line holding more or other than what its signature covers');
  });

  // An auditor's own verifier (2026-12-08): Buffer's base64url decoder skips padding, spaces and characters outside
  // the alphabet and a last character's spare bits, so the one line no later prev covers took other bytes, free text
  // included, and still verified with --jwks.
  it.each([
    ['padding', (sig: string) => `${sig}=`],
    // 64 bytes in 86 characters: the last one's low 4 bits carry nothing.
    ['the last character\'s spare bits', (sig: string) => sig.slice(0, -1) + B64URL[B64URL.indexOf(sig.at(-1)!) ^ 1]!],
    ['a newline escape in the middle', (sig: string) => `${sig.slice(0, 20)}\\n${sig.slice(20)}`],
    ['a space in the middle', (sig: string) => `${sig.slice(0, 20)} ${sig.slice(20)}`],
    ['free text after it', (sig: string) => `${sig}= {\\"type\\":\\"audit\\",\\"decision\\":\\"allow\\",\\"sub\\":\\"mallory\\"}`],
  ])('case=the final checkpoint\'s sig written another way (%s) → the signature does not verify', async (name, respell) => {
    const { final } = checkpoints(lines);
    const sig = parse(lines[final]!)!.checkpoint.sig as string;
    const other = respell(sig);
    await expectBrokenEdit(`respelled-${name.replace(/\W+/g, '-')}.log`, lines, final, `"sig":"${sig}"`, `"sig":"${other}"`, 'the checkpoint signature does not verify');
  });

  it('case=cut right after the periodic checkpoint while the gate was down, then a restart → NOT VOUCHED at that checkpoint', async () => {
    const { periodic } = checkpoints(lines);
    const log = join(dir, 'restarted.log');
    await writeFile(log, text(lines.slice(0, periodic + 1)));
    await run(log, 2, 2);
    const after = (await readFile(log, 'utf8')).trimEnd().split('\n');
    expect(parse(after[periodic + 1]!)).toMatchObject({ event: 'chain_start', start: 'continued', after_seq: parse(lines[periodic]!)!.seq });
    const r = await verify('restarted.log', after);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`NOT VOUCHED: ${r.file}:${periodic + 1} (seq ${parse(lines[periodic]!)!.seq}): a periodic checkpoint, not the final one a graceful stop writes; the gate restarted (chain_start at line ${periodic + 2}) after it`);
    // After the intact file's final checkpoint the same restart is clean.
    const clean = join(dir, 'clean-restart.log');
    await writeFile(clean, text(lines));
    await run(clean, 2, 2);
    expect((await verify('clean-restart-copy.log', (await readFile(clean, 'utf8')).trimEnd().split('\n'))).code).toBe(0);
  });

  it('case=rotated files, the tail cut after the first file\'s checkpoint → the summary names that checkpoint by file', async () => {
    const { periodic, final } = checkpoints(lines);
    const first = join(dir, 'rotated.1.log');
    const second = join(dir, 'rotated.2.log');
    await writeFile(first, text(lines.slice(0, periodic + 1)));
    await writeFile(second, text(lines.slice(periodic + 1, final)));
    const r = await runCli(['audit', 'verify', first, second, '--jwks', jwks]);
    expect(r.code).toBe(1);
    const lastSeq = parse(lines[final - 1]!)!.seq;
    expect(r.stdout).toContain(`chain: 12 lines up to seq ${lastSeq} (${second}:${final - periodic - 1}); 1 checkpoint(s), last valid at ${first}:${periodic + 1}`);
    expect(r.stdout).toContain(`NOT VOUCHED: ${second}:${final - periodic - 1}`);
  });

  it('case=the final checkpoint\'s prev changed → that checkpoint is named, not the line before it, whose hash it signs', async () => {
    const { final } = checkpoints(lines);
    const cp = parse(lines[final]!)!;
    const edited = [...lines];
    edited[final] = edited[final]!.replace(`"prev":"${cp.prev}"`, `"prev":"${'0'.repeat(64)}"`);
    expect(edited[final]).not.toBe(lines[final]);
    const r = await verify('final-prev.log', edited);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${r.file}:${final + 1} (seq ${cp.seq}): this line's prev was changed: the checkpoint it carries names the hash of the line before it (line ${final}, seq ${cp.seq - 1})`);
  });

  it('case=a gate killed right after a periodic checkpoint → NOT VOUCHED there', async () => {
    const ls = await run(join(dir, 'killed.log'), 4, 0);
    const idx = chainIdx(ls);
    expect(parse(ls[idx.at(-1)!]!)).toMatchObject({ event: 'checkpoint' });
    expect(parse(ls[idx.at(-1)!]!)!.checkpoint.final).toBeUndefined();
    const r = await verify('killed-copy.log', ls);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('a periodic checkpoint, not the final one a graceful stop writes; the chain ends here');
  });
});

describe('the head of a file', () => {
  it('case=the chain_start removed, or the first lines → BROKEN at the first line left; --allow-mid-chain makes it a note', async () => {
    for (const drop of [1, 4]) {
      const headless = lines.slice(drop);
      for (const withKeys of [false, true]) {
        const r = await verify(`headless-${drop}.log`, headless, withKeys);
        expect(r.code).toBe(1);
        expect(r.stdout).toContain(`BROKEN: first broken line ${r.file}:1 (seq ${drop}): the chain begins at seq ${drop}, not with its chain_start at seq 0: the lines before it are not in the files given`);
      }
      const allowed = await runCli(['audit', 'verify', join(dir, `headless-${drop}.log`), '--jwks', jwks, '--allow-mid-chain']);
      expect(allowed.stdout).toContain(`note: ${join(dir, `headless-${drop}.log`)}:1 (seq ${drop}): the chain begins at seq ${drop}`);
      expect(allowed.code).toBe(0);
    }
  });
});
