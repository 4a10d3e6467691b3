/**
 * A revocation file's new text that drops entries in force (SPEC §5, issue 21 item 5): what it adds is
 * enforced at once, what it drops only once the same file has stood still for a second, and the two
 * lists are enforced together meanwhile. A re-probe rewrote the file in place (truncate, one new line,
 * a pause, the old line): the prefix held as many entries as the list and was applied at once, so the
 * revoked token was allowed for the whole pause. Also: a file that cannot be read is a /readyz
 * problem, and a reload of an unchanged file reads nothing.
 */
import { execFileSync } from 'node:child_process';
import { appendFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileRevocationSource } from '../../src/revocation/file-source.ts';
import { tempDir } from '../fixtures/keys.ts';

let dir: string;
let file: string;
let source: FileRevocationSource | undefined;
let loads: number;

const revoked = (jti: string): boolean => source!.index.isRevoked(jti, 'someone', 0, undefined);
const line = (jti: string): string => `${JSON.stringify({ jti })}\n`;

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The way writers should do it: a temp file renamed over the list. */
async function replace(text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

async function startWith(text: string, pollMs = 60_000): Promise<FileRevocationSource> {
  await writeFile(file, text);
  loads = 0;
  source = new FileRevocationSource(file, pollMs, { loaded: () => loads++ });
  await source.start();
  return source;
}

beforeEach(async () => {
  dir = await tempDir('jitgate-file-removals-');
  file = join(dir, 'revoked.jsonl');
});
afterEach(async () => {
  source?.stop();
  source = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('a new text that drops entries in force', () => {
  it('an in-place rewrite paused after a clean prefix as long as the list: the revoked token stays revoked, the new line counts at once', async () => {
    const s = await startWith(line('r1'));
    expect(revoked('r1')).toBe(true);
    // The writer truncates, writes one new line, and is paused (SIGHUP or a poll reads it then).
    await truncate(file, 0);
    await appendFile(file, line('zz1'));
    await s.reload();
    expect(revoked('r1')).toBe(true);
    expect(revoked('zz1')).toBe(true);
    expect(s.pendingRemoval).toBe(true);
    expect(s.problem).toBeUndefined();
    // The writer finishes: the file drops nothing any more and is applied at once.
    await appendFile(file, line('r1'));
    await s.reload();
    expect(s.pendingRemoval).toBe(false);
    expect([revoked('r1'), revoked('zz1')]).toEqual([true, true]);
    expect(s.index.size).toBe(2);
  });

  it('a release needs a read that still leaves the entry out: a rewrite stuck on a torn line for seconds releases nothing', async () => {
    const s = await startWith(line('r1'), 50);
    await truncate(file, 0);
    await appendFile(file, line('zz1'));
    await s.reload();
    // The writer goes on, and stalls mid-line: every read from now on is refused (torn_tail).
    await appendFile(file, '{"jti":"r');
    for (const wait of [1_500, 1_000]) {
      await new Promise((r) => setTimeout(r, wait));
      expect(revoked('r1')).toBe(true);
    }
    expect(s.problem).toMatch(/torn_tail/);
    await appendFile(file, '1"}\n');
    await until(() => s.problem === undefined && !s.pendingRemoval, 3_000, 'the whole file');
    expect([revoked('r1'), revoked('zz1')]).toEqual([true, true]);
  });

  it('a refused read restarts the second: a rewrite stalled on a torn line, then a new clean prefix, releases nothing yet (a re-probe)', async () => {
    const s = await startWith(line('r1') + line('r2'), 50);
    await truncate(file, 0);
    await appendFile(file, line('zz'));
    await s.reload();
    await appendFile(file, '{"jti":"r');
    await new Promise((r) => setTimeout(r, 1_500)); // every read refused (torn_tail) meanwhile
    expect(s.problem).toMatch(/torn_tail/);
    await appendFile(file, '2"}\n'); // a clean prefix again: [zz, r2], still without r1
    await s.reload();
    expect(revoked('r1')).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(revoked('r1')).toBe(true);
    await appendFile(file, line('r1'));
    await until(() => !s.pendingRemoval, 3_000, 'the whole file');
    expect([revoked('r1'), revoked('r2'), revoked('zz')]).toEqual([true, true, true]);
  });

  it('a file missing for over a second while entries are held: the first clean prefix after it releases nothing yet (a re-probe)', async () => {
    const s = await startWith(line('r1') + line('r2'), 50);
    await truncate(file, 0);
    await appendFile(file, line('zz'));
    await s.reload();
    await rm(file);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(s.problem).toMatch(/cannot be read/);
    await writeFile(file, line('zz'));
    await s.reload();
    expect([revoked('r1'), revoked('r2')]).toEqual([true, true]);
    await new Promise((r) => setTimeout(r, 300));
    expect([revoked('r1'), revoked('r2')]).toEqual([true, true]);
  });

  it('stop() then start(): a removal is released again (a re-probe: held for good)', async () => {
    const s = await startWith(line('r1') + line('a'), 50);
    s.stop();
    await s.start();
    await replace(line('a'));
    await until(() => !revoked('r1'), 5_000, 'the removal');
    expect(revoked('a')).toBe(true);
  });

  it('stop() while a reload is under way: no release timer is armed after it', async () => {
    const s = await startWith(line('r1') + line('r2'), 60_000);
    await replace(line('r2'));
    const loading = s.reload();
    s.stop();
    await loading;
    const before = loads;
    await new Promise((r) => setTimeout(r, 1_300));
    expect(loads).toBe(before);
    expect(revoked('r1')).toBe(true);
  });

  it('a list replaced by one that removes entries: the new entry at once, the removal once the file stood still for a second', async () => {
    const s = await startWith(line('a') + line('r1'), 50);
    await replace(line('r2'));
    const changed = Date.now();
    await s.reload();
    // Before: r2 waited for the confirmation with the rest (1.2 s with a 500 ms poll in the re-probe).
    expect(revoked('r2')).toBe(true);
    expect([revoked('a'), revoked('r1')]).toEqual([true, true]);
    await until(() => !revoked('r1'), 5_000, 'the removal to be applied');
    expect(Date.now() - changed).toBeGreaterThanOrEqual(1_000);
    expect([revoked('a'), revoked('r2')]).toEqual([false, true]);
    expect(s.pendingRemoval).toBe(false);
  });

  it('each dropped entry is held for a second from when it was first missed, whatever versions come meanwhile', async () => {
    const s = await startWith(line('a') + line('b'), 50);
    const t0 = Date.now();
    await writeFile(file, line('a') + line('x'));
    await s.reload();
    await new Promise((r) => setTimeout(r, 600));
    const t1 = Date.now();
    await writeFile(file, line('a'));
    await s.reload();
    expect([revoked('a'), revoked('b'), revoked('x')]).toEqual([true, true, true]);
    await until(() => !revoked('b'), 5_000, 'b to be released');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
    await until(() => !revoked('x'), 5_000, 'x to be released');
    expect(Date.now() - t1).toBeGreaterThanOrEqual(1_000);
    expect([revoked('a'), s.pendingRemoval]).toEqual([true, false]);
  });

  it('a file replaced faster than a second: what it keeps dropping is released all the same, and the list stays bounded (a re-probe grew a union to 1.3 M entries)', async () => {
    const s = await startWith(line('r1'), 50);
    const t0 = Date.now();
    let largest = 0;
    for (let v = 0; v < 12; v++) {
      const text = Array.from({ length: 200 }, (_, i) => line(`v${v}-${i}`)).join('');
      await replace(text);
      await s.reload();
      largest = Math.max(largest, s.index.size);
      expect(revoked(`v${v}-0`)).toBe(true);
      await new Promise((r) => setTimeout(r, 250));
    }
    // r1 left the file at t0 and was released about a second later, though no version stood still.
    expect(Date.now() - t0).toBeGreaterThan(2_500);
    expect(revoked('r1')).toBe(false);
    // At most the versions of the last second (and a poll's slack), never all twelve.
    expect(largest).toBeLessThanOrEqual(6 * 200 + 1);
  });
});

describe('reading the file', () => {
  it('a file that cannot be read is a problem for /readyz; the list is kept and the problem clears when it is back', async () => {
    const s = await startWith(line('r1'), 30);
    await rm(file);
    await until(() => s.problem !== undefined, 3_000, 'the problem');
    expect(s.problem).toBe(`revocation source file:${file}: the file cannot be read (ENOENT); keeping the last good list of 1 entries`);
    expect(revoked('r1')).toBe(true);
    await writeFile(file, line('r1') + line('r2'));
    await until(() => s.problem === undefined && revoked('r2'), 3_000, 'the file back');
  });

  it('a named pipe put in its place is not read (the read would wait for a writer and hold every later reload): a problem, the list kept', async () => {
    const s = await startWith(line('r1'), 30);
    await rm(file);
    execFileSync('mkfifo', [file]);
    await until(() => s.problem?.includes('(not a regular file)') === true, 3_000, 'the problem');
    expect(revoked('r1')).toBe(true);
    await rm(file);
    await writeFile(file, line('r1') + line('r2'));
    await until(() => s.problem === undefined && revoked('r2'), 3_000, 'the file back');
  });

  it('a reload of an unchanged file reads nothing (a SIGHUP storm re-parsed a large list every time)', async () => {
    const s = await startWith(line('r1'));
    expect(loads).toBe(1);
    for (let i = 0; i < 5; i++) await s.reload();
    expect(loads).toBe(1);
    await appendFile(file, line('r2'));
    await s.reload();
    expect(loads).toBe(2);
    expect(revoked('r2')).toBe(true);
  });

  it('a SIGHUP gets a report: refused text and unreadable file fail the reload, a pending removal is said, a clean read is quiet', async () => {
    const s = await startWith(line('r1') + line('r2'));
    expect(await s.reloadOnSignal()).toEqual({ ok: true });
    await replace(line('r1'));
    const pending = await s.reloadOnSignal();
    expect(pending).toMatchObject({ ok: true, msg: expect.stringContaining('drops entries') });
    await writeFile(file, line('r1') + '{"jti":"r3'); // torn last line: refused, the list kept
    expect(await s.reloadOnSignal()).toEqual({ ok: false });
    expect(revoked('r2')).toBe(true);
    await rm(file);
    expect(await s.reloadOnSignal()).toMatchObject({ ok: false, msg: 'revocation reload failed; keeping the last good list', fields: { err: expect.stringContaining('ENOENT') } });
    expect(revoked('r1')).toBe(true);
  });
});

describe('a file refused at start', () => {
  it.each([
    ['a torn last line', '{"jti":"a"}\n{"jti":"b', /refused \(torn_tail\)/],
    ['no valid line', '<html>502 Bad Gateway</html>\n', /refused \(no_valid_line\)/],
  ])('%s: the error says the gate does not start, not that it keeps a list of 0 entries (a review)', async (_what, text, reason) => {
    await writeFile(file, text);
    source = new FileRevocationSource(file, 60_000);
    const err = (await source.start().then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(err.message).toMatch(reason);
    expect(err.message.startsWith(`revocation.file ${file}: refused (`)).toBe(true);
    expect(err.message).toMatch(/no list was ever loaded, so jitgate does not start$/);
    expect(err.message).not.toMatch(/keeping/);
  });
});
