/**
 * Where a restarted gate finds its chain in an existing log file (SPEC §12): read backwards in
 * 256 KiB blocks, past other lines and other workers' chains, across block boundaries, and never
 * taking a torn last line for a chain line.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readChainTail } from '../../src/observability/audit-tail.ts';
import { tempDir } from '../fixtures/keys.ts';

const BLOCK = 256 * 1024;
let dir: string;
beforeAll(async () => {
  dir = await tempDir('jitgate-tail-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const chainLine = (seq: number, chain?: string): string =>
  JSON.stringify({ level: 'info', type: 'audit', decision: 'allow', ...(chain === undefined ? {} : { chain }), seq, prev: 'a'.repeat(64) });
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
/** Non-chain log lines, exactly `bytes` long in total (newlines included). */
function filler(bytes: number): string {
  let out = '';
  while (bytes - out.length > 200) out += `${JSON.stringify({ level: 'info', msg: 'x'.repeat(150) })}\n`;
  const rest = bytes - out.length; // one last line of exactly `rest` bytes
  return out + `{"m":"${'y'.repeat(rest - 9)}"}\n`;
}

async function file(name: string, text: string): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, text);
  return f;
}

describe('readChainTail', () => {
  it('case=the last chain line several blocks back, behind other log lines', async () => {
    const last = chainLine(41);
    const f = await file('far.log', `${chainLine(40)}\n${last}\n${filler(3 * BLOCK + 123)}`);
    expect(await readChainTail(f, undefined)).toEqual({ last: { seq: 41, hash: sha(last) }, endsWithNewline: true, empty: false });
  });

  it('case=a chain line straddling a block boundary is read whole', async () => {
    const last = chainLine(7);
    // The file's last BLOCK bytes start 100 bytes into `last`.
    const f = await file('straddle.log', `${chainLine(6)}\n${last}\n${filler(BLOCK - last.length - 1 + 100)}`);
    expect((await readChainTail(f, undefined))!.last).toEqual({ seq: 7, hash: sha(last) });
  });

  it('case=other chains (cluster workers) are skipped; each worker finds its own', async () => {
    const w1 = chainLine(10, 'w1');
    const w2 = chainLine(3, 'w2');
    const f = await file('workers.log', `${w1}\n${w2}\n${chainLine(11, 'w3')}\n`);
    expect((await readChainTail(f, 'w1'))!.last).toEqual({ seq: 10, hash: sha(w1) });
    expect((await readChainTail(f, 'w2'))!.last).toEqual({ seq: 3, hash: sha(w2) });
    expect((await readChainTail(f, undefined))!.last).toBeUndefined();
  });

  it('case=a torn last line is not a chain line; the one before it is', async () => {
    const last = chainLine(5);
    const f = await file('torn.log', `${last}\n${chainLine(6).slice(0, 40)}`);
    expect(await readChainTail(f, undefined)).toEqual({ last: { seq: 5, hash: sha(last) }, endsWithNewline: false, empty: false });
  });

  it('case=missing and empty files start a new chain', async () => {
    expect(await readChainTail(join(dir, 'none.log'), undefined)).toEqual({ last: undefined, endsWithNewline: true, empty: true });
    expect(await readChainTail(await file('empty.log', ''), undefined)).toEqual({ last: undefined, endsWithNewline: true, empty: true });
    expect((await readChainTail(await file('plain.log', '{"msg":"hi"}\nnot json\n'), undefined))!.last).toBeUndefined();
  });

  it('case=a named pipe or a device cannot be read back → undefined, without waiting for a writer', async () => {
    const fifo = join(dir, 'shipper.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await readChainTail(fifo, undefined)).toBeUndefined();
    expect(await readChainTail('/dev/null', undefined)).toBeUndefined();
  });
});
