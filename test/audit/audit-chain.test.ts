/**
 * SPEC §12 audit integrity end to end: a real `jitgate serve` writes a hash-chained audit log with
 * signed checkpoints to a real file under load, is restarted (the chain continues), and
 * `jitgate audit verify` (a real CLI process) accepts the intact file and finds each tampering —
 * a changed character, a removed line, an inserted line, two lines swapped, a cut tail, a forged
 * checkpoint — at the right line. Bad input (lines that are not JSON, a torn last line) is
 * reported without a crash.
 */
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalCheckpoint } from '../../src/observability/audit-checkpoint.ts';
import { chainIdx, children, killAll, load, parse, serveToFile, stop } from '../fixtures/audit-gate.ts';
import { runCli } from '../fixtures/cli.ts';
import { CLI, startRecordingUpstream, tokenNow, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
let dir: string;
let logFile: string;
let jwks: string;
/** The gate config, to derive variants from (another destination, workers). */
let raw: Record<string, any>;
/** A grant token of the test issuer (5 minutes). */
let token: string;
/** The intact log, as lines (without newlines). */
let lines: string[];

async function verify(name: string, ls: string[] | string, withKeys = false) {
  const file = join(dir, name);
  await writeFile(file, typeof ls === 'string' ? ls : `${ls.join('\n')}\n`);
  return runCli(['audit', 'verify', file, ...(withKeys ? ['--jwks', jwks] : [])]);
}

beforeAll(async () => {
  up = await startRecordingUpstream();
  const cfg = await writeGateConfig(up.url, (c) => {
    c.log = { level: 'info', destination: './audit.log', audit_chain: true, audit_checkpoint_key: './audit-key/private.jwk.json' };
  });
  dir = cfg.dir;
  raw = cfg.raw;
  logFile = join(dir, 'audit.log');
  // The key comes from the CLI operators use: `jitgate keys --alg EdDSA`.
  const keys = await runCli(['keys', '--alg', 'EdDSA', '--out', join(dir, 'audit-key')]);
  expect(keys.code).toBe(0);
  jwks = join(dir, 'audit-key', 'jwks.json');

  token = await tokenNow(cfg.keys);
  const first = await serveToFile(cfg.file, logFile, 0);
  await load(first.url, token, 400);
  expect(await stop(first.child)).toBe(0);
  const before = (await readFile(logFile, 'utf8')).split('\n').length - 1;
  const second = await serveToFile(cfg.file, logFile, before);
  await load(second.url, token, 100);
  expect(await stop(second.child)).toBe(0);
  lines = (await readFile(logFile, 'utf8')).trimEnd().split('\n');
}, 120_000);

afterAll(async () => {
  killAll();
  await up?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('the chain a real gate writes', () => {
  it('case=every audit line carries consecutive seq and prev = SHA-256 of the previous audit line; other log lines interleave', () => {
    const idx = chainIdx(lines);
    expect(idx.length).toBeGreaterThan(500);
    expect(lines.length).toBeGreaterThan(idx.length); // startup, drain and other lines sit between
    let prev = '0'.repeat(64);
    idx.forEach((i, n) => {
      const v = parse(lines[i]!)!;
      expect(v.seq).toBe(n);
      expect(v.prev).toBe(prev);
      prev = createHash('sha256').update(lines[i]!).digest('hex');
    });
    for (const l of lines) if (parse(l)?.type === 'audit') expect(typeof parse(l)!.seq).toBe('number');
  });

  it('case=restart continues the chain from the file; each graceful stop ends with a signed checkpoint', () => {
    const starts = lines.map(parse).filter((v) => v?.event === 'chain_start');
    expect(starts.map((s) => s!.start)).toEqual(['new', 'continued']);
    const lastBeforeRestart = lines.map(parse).filter((v) => typeof v?.seq === 'number' && v.seq < starts[1]!.seq).at(-1)!;
    expect(lastBeforeRestart).toMatchObject({ event: 'checkpoint', checkpoint: { final: true } });
    expect(starts[1]!.after_seq).toBe(lastBeforeRestart.seq);
    expect(parse(lines[chainIdx(lines).at(-1)!]!)).toMatchObject({ event: 'checkpoint', checkpoint: { final: true } });
  });

  it('case=intact → exit 0 and the number of chain lines; with --jwks every checkpoint verifies', async () => {
    const n = chainIdx(lines).length;
    const plain = await runCli(['audit', 'verify', logFile]);
    expect(plain.stderr).toBe('');
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain(`OK: ${n} chain lines checked`);
    const keyed = await runCli(['audit', 'verify', logFile, '--jwks', jwks]);
    expect(keyed.code).toBe(0);
    expect(keyed.stdout).toMatch(new RegExp(`OK: ${n} chain lines checked, \\d+ checkpoint signature\\(s\\) valid`));
  });

  it('case=rotated files given in order verify as one chain', async () => {
    const cut = chainIdx(lines)[300]!;
    await writeFile(join(dir, 'rot.1'), `${lines.slice(0, cut).join('\n')}\n`);
    await writeFile(join(dir, 'rot.2'), `${lines.slice(cut).join('\n')}\n`);
    const r = await runCli(['audit', 'verify', join(dir, 'rot.1'), join(dir, 'rot.2'), '--jwks', jwks]);
    expect(r.code).toBe(0);
    // The newer file alone begins mid-chain: its head could have been cut, unless the operator says it is a rotated file.
    const alone = await runCli(['audit', 'verify', join(dir, 'rot.2'), '--jwks', jwks]);
    expect(alone.code).toBe(1);
    expect(alone.stdout).toContain(`BROKEN: first broken line ${join(dir, 'rot.2')}:1 (seq 300): the chain begins at seq 300`);
    const rotated = await runCli(['audit', 'verify', join(dir, 'rot.2'), '--jwks', jwks, '--allow-mid-chain']);
    expect(rotated.stdout).toContain(`note: ${join(dir, 'rot.2')}:1 (seq 300): the chain begins at seq 300`);
    expect(rotated.code).toBe(0);
    // Out of order, the second file's new chain start hides nothing from the keys: the first chain's lines are unvouched.
    const swapped = await runCli(['audit', 'verify', join(dir, 'rot.2'), join(dir, 'rot.1'), '--jwks', jwks]);
    expect(swapped.code).toBe(1);
    expect(swapped.stdout).toContain('NOT VOUCHED');
  });

  it('case=rotated files out of order: a line of another file is named with its file (a probe read "line 93" of the wrong one)', async () => {
    const [c1, c2] = [chainIdx(lines)[100]!, chainIdx(lines)[200]!];
    const [a, b, c] = ['part.a', 'part.b', 'part.c'].map((n) => join(dir, n));
    await writeFile(a!, `${lines.slice(0, c1).join('\n')}\n`);
    await writeFile(b!, `${lines.slice(c1, c2).join('\n')}\n`);
    await writeFile(c!, `${lines.slice(c2).join('\n')}\n`);
    const r = await runCli(['audit', 'verify', a!, c!, b!]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${c}:1 (seq 200): seq 200 follows seq 99 (${a}:${chainIdx(lines)[99]! + 1}): lines with seq 100–199 are missing here`);
  });
});

describe('tampering is found at the right line', () => {
  const pick = (k: number) => chainIdx(lines)[k]!; // 0-based file index of the k-th chain line
  /** The first chain line from the k-th on whose text contains `text`. */
  const pickWith = (k: number, text: string) => chainIdx(lines).find((i) => i >= pick(k) && lines[i]!.includes(text))!;
  const seqAt = (i: number) => parse(lines[i]!)!.seq as number;

  it('case=a changed character → that line', async () => {
    const i = pickWith(120, '"status":');
    const ls = [...lines];
    ls[i] = ls[i]!.replace('"status":', '"status":9');
    const r = await verify('changed.log', ls);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'changed.log')}:${i + 1} (seq ${seqAt(i)}): this line does not hash to the prev`);
  });

  it('case=a changed prev → that line, not the intact line before it (the thirteenth round)', async () => {
    const i = pick(130);
    const ls = [...lines];
    const prev = parse(ls[i]!)!.prev as string;
    ls[i] = ls[i]!.replace(`"prev":"${prev}"`, `"prev":"${prev.slice(0, -1)}${prev.endsWith('0') ? '1' : '0'}"`);
    expect(ls[i]).not.toBe(lines[i]);
    const r = await verify('changed-prev.log', ls);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'changed-prev.log')}:${i + 1} (seq ${seqAt(i)}): this line was changed: its prev does not match the line before it`);
    expect(r.stdout).not.toContain(`:${pick(129) + 1} (seq`);
  });

  it('case=three lines in a row changed → the first of them', async () => {
    const ls = [...lines];
    for (const k of [140, 141, 142]) ls[pick(k)] = ls[pick(k)]!.replace('"method":', '"method": ');
    const r = await verify('changed-run.log', ls);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'changed-run.log')}:${pick(140) + 1} (seq 140): 3 links in a row are broken from this line on (to line ${pick(142) + 1}, seq 142, and the line after it)`);
  });

  it.each([
    ['a BOM before it', (l: string) => `\uFEFF${l}`],
    ['a space before it', (l: string) => ` ${l}`],
    ['a byte after it', (l: string) => `${l}x`],
    ['its closing brace cut', (l: string) => l.slice(0, -1)],
  ])('case=the chain_start (the first chain line) damaged: %s → that line, with or without --jwks', async (_name, damage) => {
    const first = chainIdx(lines)[0]!;
    const ls = [...lines];
    ls[first] = damage(ls[first]!);
    for (const withKeys of [false, true]) {
      const r = await verify('head-damaged.log', ls, withKeys);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'head-damaged.log')}:${first + 1}`);
    }
  });

  it('case=a removed line → the line where its seq is missing', async () => {
    const i = pick(200);
    const ls = lines.filter((_, j) => j !== i);
    const r = await verify('removed.log', ls);
    expect(r.code).toBe(1);
    const next = ls.findIndex((l) => parse(l)?.seq === 201);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'removed.log')}:${next + 1} (seq 201): seq 201 follows seq 199`);
  });

  it('case=an inserted line (a copy of an earlier audit line) → the inserted line', async () => {
    const at = pick(250);
    const ls = [...lines.slice(0, at), lines[pick(10)]!, ...lines.slice(at)];
    const r = await verify('inserted.log', ls);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'inserted.log')}:${at + 1} (seq 10)`);
  });

  it('case=an inserted audit line without seq → that line', async () => {
    const at = pick(260);
    const forged = JSON.stringify({ level: 'info', time: new Date().toISOString(), pid: 1, type: 'audit', transport: 'proxy', decision: 'allow', reason: 'granted', status: 200, method: 'GET', path: '/orders/42' });
    const ls = [...lines.slice(0, at), forged, ...lines.slice(at)];
    const r = await verify('inserted-bare.log', ls);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'inserted-bare.log')}:${at + 1}: an audit line without seq/prev`);
  });

  it('case=two lines swapped → the first of them', async () => {
    const a = pick(300);
    const b = pick(301);
    const ls = [...lines];
    [ls[a], ls[b]] = [ls[b]!, ls[a]!];
    const r = await verify('swapped.log', ls);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'swapped.log')}:${a + 1} (seq 301)`);
  });

  it('case=a cut tail → passes without keys (nothing to compare with), fails with --jwks naming the unvouched lines', async () => {
    const idx = chainIdx(lines);
    const ls = lines.slice(0, idx.at(-4)!); // the last three chain lines, final checkpoint included, are gone
    expect((await verify('cut.log', ls)).code).toBe(0);
    const r = await verify('cut.log', ls, true);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/NOT VOUCHED: .*cut\.log:\d+ \(seq \d+\): \d+ chain line\(s\) ending here cannot be vouched for/);
  });

  it('case=forged checkpoint: a line rewritten and the chain recomputed and re-signed with another key → found at the first checkpoint after it', async () => {
    const forger = generateKeyPairSync('ed25519').privateKey;
    const start = pickWith(100, '"status":403');
    const ls = [...lines];
    ls[start] = ls[start]!.replace('"status":403', '"status":200');
    expect(ls[start]).not.toBe(lines[start]);
    // Recompute every prev from the forged line on, re-signing checkpoints as the real key would.
    let prev = createHash('sha256').update(ls[start]!).digest('hex');
    let firstCheckpoint = -1;
    for (const i of chainIdx(ls).filter((j) => j > start)) {
      const v = parse(ls[i]!)!;
      v.prev = prev;
      if (v.event === 'checkpoint') {
        if (firstCheckpoint === -1) firstCheckpoint = i;
        v.checkpoint.hash = prev;
        v.checkpoint.sig = sign(null, canonicalCheckpoint('', v.checkpoint.seq, prev, v.checkpoint.time, v.pid, v.checkpoint.final === true), forger).toString('base64url');
      }
      ls[i] = JSON.stringify(v);
      prev = createHash('sha256').update(ls[i]!).digest('hex');
    }
    expect(firstCheckpoint).toBeGreaterThan(start);
    expect((await verify('forged.log', ls)).code).toBe(0); // a consistent chain: only the signature tells
    const r = await verify('forged.log', ls, true);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`BROKEN: first broken line ${join(dir, 'forged.log')}:${firstCheckpoint + 1} (seq ${parse(ls[firstCheckpoint]!)!.seq}): the checkpoint signature does not verify`);
  });
});

describe('bad input', () => {
  it('case=lines that are not JSON → reported with their line numbers; the chain still verifies', async () => {
    const at = pick0(50);
    const ls = [...lines.slice(0, at), 'panic: something printed to the log', '<html>', ...lines.slice(at)];
    const r = await verify('noise.log', ls);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`note: ${join(dir, 'noise.log')}:${at + 1}: not a JSON line; skipped`);
    expect(r.stdout).toContain(`note: ${join(dir, 'noise.log')}:${at + 2}: not a JSON line; skipped`);
    expect(r.stdout).toContain(', 2 not JSON');
  });

  it('case=a torn last line (a crash mid-write) → says so, no crash; the lines before it verify', async () => {
    const extra = lines[chainIdx(lines)[5]!]!;
    const text = `${lines.join('\n')}\n${extra.slice(0, 90)}`;
    const r = await verify('torn.log', text);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`note: ${join(dir, 'torn.log')}:${lines.length + 1}: the last line is incomplete (no newline, not one JSON object)`);
  });

  it('case=no chain at all, an empty file, a missing file → exit 1 / 1 / 2 with a message', async () => {
    const plain = await verify('plain.log', ['{"level":"info","msg":"hello"}']);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toContain('no chained audit line found');
    expect((await verify('empty.log', '')).code).toBe(1);
    const missing = await runCli(['audit', 'verify', join(dir, 'nope.log')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('ENOENT');
  });

  it('case=--jwks given twice → exit 2 (the last one alone was used: a genuine log read as forged); a --jwks naming one of the files is still the flag\'s', async () => {
    const twice = await runCli(['audit', 'verify', logFile, '--jwks', jwks, '--jwks', jwks]);
    expect([twice.code, twice.stdout]).toEqual([2, '']);
    expect(twice.stderr).toContain('--jwks given more than once');
    // The value is the log itself: read as a JWKS (and refused as one), not taken from the flag.
    const same = await runCli(['audit', 'verify', logFile, '--jwks', logFile]);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain(`--jwks ${logFile}: `);
    expect(same.stderr).not.toContain('argument missing');
  });
});

function pick0(k: number): number {
  return chainIdx(lines)[k]!;
}

/** A config like the main one with `patch` applied, written beside it. */
async function variant(name: string, patch: (c: Record<string, any>) => void): Promise<string> {
  const c = structuredClone(raw);
  patch(c);
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, JSON.stringify(c));
  return file;
}

describe('restarts and workers', () => {
  it('case=restart after a crash mid-write: the torn line is ended, the chain continues from the last whole line and verifies', async () => {
    const log = join(dir, 'crashed.log');
    const partial = lines[chainIdx(lines)[7]!]!.slice(0, 120);
    await writeFile(log, `${lines.join('\n')}\n${partial}`); // a gate killed mid-write
    const config = await variant('crashed', (c) => {
      c.log.destination = './crashed.log';
    });
    const g = await serveToFile(config, log, lines.length);
    await load(g.url, token, 20);
    expect(await stop(g.child)).toBe(0);
    const after = (await readFile(log, 'utf8')).trimEnd().split('\n');
    expect(after[lines.length]).toBe(partial); // the torn line stays as it was, on a line of its own
    const start = after.map(parse).find((v) => v?.event === 'chain_start' && v.seq > parse(lines[chainIdx(lines).at(-1)!]!)!.seq)!;
    expect(start).toMatchObject({ start: 'continued', after_seq: parse(lines[chainIdx(lines).at(-1)!]!)!.seq });
    expect(start.ended_torn_line).toBe(true);
    const plain = await runCli(['audit', 'verify', log]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain(`note: ${log}:${lines.length + 1}: a torn line (a write cut short by a crash), ended by the restarted gate on the next line; not checked`);
    // With keys the fragment is what a crash left: nothing vouches for it, so it is named and the answer is 1.
    const r = await runCli(['audit', 'verify', log, '--jwks', jwks]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`NOT VOUCHED: ${log}:${lines.length + 1}: a torn line`);
    expect(r.stdout).not.toContain('BROKEN');
  });

  it('case=a named pipe as log.destination (a log shipper): the gate starts without waiting on it, the chain starts new, the piped lines verify', async () => {
    const fifo = join(dir, 'shipper.fifo');
    execFileSync('mkfifo', [fifo]);
    const config = await variant('fifo', (c) => {
      c.log.destination = './shipper.fifo';
    });
    // The shipper, reading before the gate starts (as one does): whatever the gate writes to the pipe.
    const shipper = createReadStream(fifo, { encoding: 'utf8' });
    let text = '';
    shipper.on('data', (d) => (text += d));
    const child = spawn(process.execPath, [CLI, 'serve', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const until = Date.now() + 20_000;
    while (!text.includes('"jitgate started"')) {
      if (child.exitCode !== null || Date.now() > until) throw new Error(`gate did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = parse(text.split('\n').find((l) => l.includes('"jitgate started"'))!)!.proxy as string;
    await load(url, token, 50);
    const ended = once(shipper, 'end');
    expect(await stop(child)).toBe(0);
    await ended;
    const ls = text.trimEnd().split('\n');
    expect(ls.map(parse).find((v) => v?.event === 'chain_start')).toMatchObject({ start: 'new', why: `destination ${fifo} cannot be read back` });
    expect(chainIdx(ls).length).toBeGreaterThan(40);
    expect((await verify('from-fifo.log', ls, true)).code).toBe(0);
  });

  // Two cluster runs and eight CLI processes: 13–30 s with two test files at a time and CPU stress beside them.
  it('case=workers: 2 share one file, each with its own chain (w1, w2), both verify', async () => {
    const log = join(dir, 'cluster.log');
    const config = await variant('cluster', (c) => {
      c.log.destination = './cluster.log';
      c.workers = 2;
    });
    const g = await serveToFile(config, log, 0);
    await load(g.url, token, 200);
    expect(await stop(g.child)).toBe(0);
    const ls = (await readFile(log, 'utf8')).trimEnd().split('\n');
    const chains = new Set(ls.map(parse).filter((v) => typeof v?.seq === 'number').map((v) => v!.chain));
    expect([...chains].sort()).toEqual(['w1', 'w2']);
    const r = await runCli(['audit', 'verify', log, '--jwks', jwks]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/chain w1: \d+ lines/);
    expect(r.stdout).toMatch(/chain w2: \d+ lines/);
    // Removing one worker's line is still found, in that worker's chain.
    const victim = ls.findIndex((l) => parse(l)?.chain === 'w2' && parse(l)?.seq === 5);
    const tampered = await verify('cluster-removed.log', ls.filter((_, i) => i !== victim));
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toMatch(/BROKEN: first broken line .*cluster-removed\.log:\d+ \(seq 6, chain w2\): seq 6 follows seq 4/);

    // A second run on the same file. Each worker's chain_start names the run and its two workers.
    const again = await serveToFile(config, log, ls.length);
    await load(again.url, token, 100);
    expect(await stop(again.child)).toBe(0);
    const both = (await readFile(log, 'utf8')).trimEnd().split('\n');
    const starts = both.map(parse).filter((v) => v?.event === 'chain_start');
    expect(starts.map((v) => [v!.chain, v!.start, v!.workers])).toEqual(
      expect.arrayContaining([
        ['w1', 'new', 2],
        ['w2', 'new', 2],
        ['w1', 'continued', 2],
        ['w2', 'continued', 2],
      ]),
    );
    expect(new Set(starts.map((v) => v!.run)).size).toBe(2);
    expect((await runCli(['audit', 'verify', log, '--jwks', jwks])).code).toBe(0);
    // Every w2 line of the second run removed: each chain is intact on its own (w2's ends at its first
    // run's final checkpoint), but the second run stopped gracefully without a w2 chain in it.
    const secondRun = starts.find((v) => v!.chain === 'w2' && v!.start === 'continued')!.run;
    const w2Starts = both.findIndex((l) => parse(l)?.event === 'chain_start' && parse(l)?.chain === 'w2' && parse(l)?.run === secondRun);
    const cut = both.filter((l, i) => i < w2Starts || parse(l)?.chain !== 'w2');
    expect(cut.length).toBeLessThan(both.length - 2);
    for (const withKeys of [false, true]) {
      const r = await verify('cluster-run-cut.log', cut, withKeys);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`BROKEN: .*cluster run ${secondRun} \\(begun at line \\d+\\) started 2 workers and stopped gracefully at this final checkpoint, but chain w2 has no chain_start in it`));
    }
    // A run's chain_start edited (a key written twice): named as the first broken line. The run check then misses
    // that worker's start too; it was reported at the run's first line, before the edit, and named first (an
    // auditor's probe, 2026-12-08).
    const w1Again = both.findIndex((l) => parse(l)?.event === 'chain_start' && parse(l)?.chain === 'w1' && parse(l)?.run === secondRun);
    const w2Again = both.findIndex((l) => parse(l)?.event === 'chain_start' && parse(l)?.chain === 'w2' && parse(l)?.run === secondRun);
    const edited = Math.max(w1Again, w2Again);
    const twice = both.map((l, i) => (i === edited ? l.replace('"event":"chain_start"', '"event":"chain_start","event":"chain_start"') : l));
    expect(twice[edited]).not.toBe(both[edited]);
    const named = await verify('cluster-start-edited.log', twice, true);
    expect(named.code).toBe(1);
    expect(named.stdout).toContain(`BROKEN: first broken line ${join(dir, 'cluster-start-edited.log')}:${edited + 1}`);
    // Rotated between the run's start and its final checkpoint: reported at the checkpoint, the message names the
    // run's start by its file (it said "line N", a line of the other file).
    const runStart = cut.findIndex((l) => parse(l)?.event === 'chain_start' && parse(l)?.run === secondRun);
    const newer = join(dir, 'cluster-run-cut.2.log');
    await writeFile(newer, `${cut.slice(runStart + 1).join('\n')}\n`);
    await writeFile(join(dir, 'cluster-run-cut.1.log'), `${cut.slice(0, runStart + 1).join('\n')}\n`);
    const rotated = await runCli(['audit', 'verify', join(dir, 'cluster-run-cut.1.log'), newer]);
    expect(rotated.code).toBe(1);
    expect(rotated.stdout).toMatch(new RegExp(`cluster-run-cut\\.2\\.log:\\d+ .*cluster run ${secondRun} \\(begun at ${join(dir, 'cluster-run-cut.1.log').replaceAll('.', '\\.')}:\\d+\\) started 2 workers and stopped gracefully at this final checkpoint`));
  }, 60_000);
});
