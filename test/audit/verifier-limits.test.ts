/**
 * `jitgate audit verify` against files made to exhaust it or to confuse its key lookup (a review of
 * 2026-12-06): millions of chain ids or runs, two keys under one kid, devices and directories, and
 * nesting too deep to check. Each gets a precise verdict in bounded memory, never a crash or a hang.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainVerifier, MAX_CHAINS, MAX_RUNS } from '../../src/audit/chain-verifier.ts';
import { GENESIS } from '../../src/observability/audit-chain.ts';
import { runCli } from '../fixtures/cli.ts';
import { tempDir } from '../fixtures/keys.ts';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('jitgate-verify-limits-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const start = (chain: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ level: 'info', time: '2026-12-06T10:00:00.000Z', pid: 1, type: 'audit', event: 'chain_start', start: 'new', ...extra, chain, seq: 0, prev: GENESIS });

describe('bounded state', () => {
  it(`case=more than ${MAX_CHAINS} chain ids → BROKEN once, further chains not tracked`, () => {
    const v = new ChainVerifier();
    for (let i = 0; i < MAX_CHAINS + 500; i++) v.line(start(`w${i}`), 'f', i + 1);
    v.end();
    expect(v.chains.size).toBe(MAX_CHAINS);
    expect(v.brokenCount).toBe(1);
    expect(v.broken[0]).toMatchObject({ line: MAX_CHAINS + 1, message: expect.stringContaining(`beyond the ${MAX_CHAINS}th chain id`) });
    expect(v.ok).toBe(false);
  });

  it(`case=more than ${MAX_RUNS} cluster runs → BROKEN once`, () => {
    const v = new ChainVerifier();
    for (let i = 0; i <= MAX_RUNS; i++) v.line(start('w1', { run: i.toString(16).padStart(16, '0'), workers: 1, time: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString() }), 'f', i + 1);
    v.end();
    expect(v.brokenCount).toBe(1);
    expect(v.broken[0]!.message).toContain(`beyond the ${MAX_RUNS}th`);
  });

  it('case=a run naming 2^53 workers with a final checkpoint → BROKEN at once, not a list of every missing worker (it ran out of memory)', () => {
    const v = new ChainVerifier();
    v.line(start('w1', { run: 'a'.repeat(16), workers: Number.MAX_SAFE_INTEGER }), 'f', 1);
    v.end();
    expect(v.broken[0]!.message).toContain(`naming ${Number.MAX_SAFE_INTEGER} workers`);
  });

  it('case=a gracefully stopped run missing many workers → one finding naming ten of them and the count', () => {
    const v = new ChainVerifier();
    const run = 'b'.repeat(16);
    v.line(start('w1', { run, workers: 40 }), 'f', 1);
    const cp = { level: 'info', time: '2026-12-06T10:00:00.000Z', pid: 1, type: 'audit', event: 'checkpoint', checkpoint: { seq: 0, hash: '', time: '2026-12-06T10:00:00.000Z', final: true, sig: 'x' }, chain: 'w1', seq: 1, prev: '' };
    const first = start('w1', { run, workers: 40 });
    const prev = createHash('sha256').update(first).digest('hex');
    v.line(JSON.stringify({ ...cp, checkpoint: { ...cp.checkpoint, hash: prev }, prev }), 'f', 2);
    v.end();
    expect(v.broken.map((b) => b.message)).toEqual([expect.stringMatching(/chain w2, w3, .*, w11 and 29 more has no chain_start/)]);
  });

  it('case=a line nested a million levels deep → BROKEN saying so, not "a key appears twice"', () => {
    const v = new ChainVerifier();
    v.line(start(''), 'f', 1);
    const deep = `{"type":"audit","decision":"allow","x":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`;
    v.line(deep, 'f', 2);
    expect(v.broken.map((b) => b.message)).toEqual([expect.stringContaining('nested too deeply')]);
  });
});

describe('the CLI', () => {
  it('case=a JWKS naming one kid twice → exit 2 naming it (which key signed is not guessed)', async () => {
    const x = () => generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
    const jwks = join(dir, 'dup.jwks.json');
    await writeFile(jwks, JSON.stringify({ keys: [{ ...x(), kid: 'k1' }, { ...x(), kid: 'k1' }] }));
    const log = join(dir, 'one.log');
    await writeFile(log, `${start('')}\n`);
    const r = await runCli(['audit', 'verify', log, '--jwks', jwks]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('two Ed25519 keys with kid "k1"');
  });

  it('case=a JWKS holding the private checkpoint key ("d") → exit 2: whoever reads it could forge checkpoints', async () => {
    const jwks = join(dir, 'private.jwks.json');
    await writeFile(jwks, JSON.stringify({ keys: [{ ...generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }), kid: 'k1' }] }));
    const log = join(dir, 'one-private.log');
    await writeFile(log, `${start('')}\n`);
    const r = await runCli(['audit', 'verify', log, '--jwks', jwks]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('a key holds private material ("d")');
  });

  it('case=a device or a directory → exit 2 at once; a FIFO with a writer is read to its end', async () => {
    const zero = await runCli(['audit', 'verify', '/dev/zero']);
    expect([zero.code, zero.stderr.trim()]).toEqual([2, 'jitgate audit verify: /dev/zero: not a regular file (a device or a socket)']);
    const sub = join(dir, 'a-dir');
    await mkdir(sub);
    const d = await runCli(['audit', 'verify', sub]);
    expect([d.code, d.stderr.trim()]).toEqual([2, `jitgate audit verify: ${sub}: is a directory`]);
  });
});
