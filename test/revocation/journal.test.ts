/**
 * The admin journal on a real file: append + replay, torn tails from a crash, group commit under
 * concurrent appends, compaction of expired entries at start, corruption kept for inspection.
 */
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/core/clock.ts';
import type { RevocationEntry } from '../../src/revocation/entries.ts';
import { entryToJson, Journal } from '../../src/revocation/journal.ts';
import { JournalRevocationSource, type JournalReplayInfo } from '../../src/revocation/journal-source.ts';
import { tempDir } from '../fixtures/keys.ts';
import { NOW } from '../fixtures/tokens.ts';

const jti = (id: string, exp?: number): RevocationEntry => ({ kind: 'jti', jti: id, exp });

async function journalFile(): Promise<string> {
  return join(await tempDir('jitgate-journal-'), 'revocations.journal');
}

describe('Journal', () => {
  it('creates the file, appends durably and replays what it appended', async () => {
    const file = await journalFile();
    const j = new Journal(file);
    expect((await j.open()).entries).toEqual([]);
    await j.append([jti('a'), { kind: 'sub', sub: 's"1', before: NOW, exp: NOW + 60 }, { kind: 'txn', txn: 't', exp: undefined }]);
    await j.close();
    expect(await readFile(file, 'utf8')).toBe('{"jti":"a"}\n{"sub":"s\\"1","before":1764000000,"exp":1764000060}\n{"txn":"t"}\n');
    const j2 = new Journal(file);
    const again = await j2.open();
    await j2.close();
    expect(again.entries).toEqual([jti('a'), { kind: 'sub', sub: 's"1', before: NOW, exp: NOW + 60 }, { kind: 'txn', txn: 't', exp: undefined }]);
  });

  it('drops a torn last line and truncates it, so the next append starts on a fresh line', async () => {
    const file = await journalFile();
    await writeFile(file, '{"jti":"a"}\n{"jti":"b"}\n{"jti":"to');
    const j = new Journal(file);
    const replay = await j.open();
    expect(replay).toMatchObject({ tornTail: true, errors: [] });
    expect(replay.entries.map((e) => (e.kind === 'jti' ? e.jti : ''))).toEqual(['a', 'b']);
    await j.append([jti('c')]);
    await j.close();
    expect(await readFile(file, 'utf8')).toBe('{"jti":"a"}\n{"jti":"b"}\n{"jti":"c"}\n');
  });

  it('keeps a complete last entry that only lacks its newline', async () => {
    const file = await journalFile();
    await writeFile(file, '{"jti":"a"}\n{"jti":"b"}');
    const j = new Journal(file);
    expect((await j.open()).entries).toHaveLength(2);
    await j.append([jti('c')]);
    await j.close();
    expect(await readFile(file, 'utf8')).toBe('{"jti":"a"}\n{"jti":"b"}\n{"jti":"c"}\n');
  });

  it('group-commits concurrent appends: every line lands whole, each caller resolves after its sync', async () => {
    const file = await journalFile();
    const j = new Journal(file);
    await j.open();
    await Promise.all(Array.from({ length: 200 }, (_, i) => j.append([jti(`c${i}`), jti(`d${i}`)])));
    await j.close();
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(400);
    expect(new Set(lines).size).toBe(400);
    for (const l of lines) expect(JSON.parse(l)).toHaveProperty('jti');
  });

  it('refuses appends before open', async () => {
    await expect(new Journal(await journalFile()).append([jti('x')])).rejects.toThrow(/not open/);
  });

  it('writes the same JSON a feed line uses', () => {
    expect(entryToJson({ kind: 'jti', jti: '__proto__', exp: 5 })).toBe('{"jti":"__proto__","exp":5}');
  });
});

describe('JournalRevocationSource', () => {
  async function source(file: string, clock: FixedClock) {
    const replays: JournalReplayInfo[] = [];
    const s = new JournalRevocationSource(file, { clock, onReplay: (i) => replays.push(i) });
    await s.start();
    return { s, replays };
  }

  it('enforces appended entries only after they are on disk, and replays them after a restart', async () => {
    const file = await journalFile();
    const clock = new FixedClock(NOW * 1000);
    const { s } = await source(file, clock);
    await s.append([jti('gone'), { kind: 'txn', txn: 'task-9', exp: undefined }]);
    expect(s.index.isRevoked('gone', 'sub', NOW, undefined)).toBe(true);
    expect(await readFile(file, 'utf8')).toContain('"gone"');
    s.stop();
    const { s: again } = await source(file, clock);
    expect(again.index.isRevoked('gone', 'sub', NOW, undefined)).toBe(true);
    expect(again.index.isRevoked('j', 'sub', NOW, 'task-9')).toBe(true);
    expect(again.maxStaleMs).toBeUndefined();
    again.stop();
  });

  it('drops expired entries at start and compacts the file', async () => {
    const file = await journalFile();
    await writeFile(file, [jti('old', NOW - 10), jti('live', NOW + 10), jti('forever')].map(entryToJson).join('\n') + '\n');
    const { s, replays } = await source(file, new FixedClock(NOW * 1000));
    expect(replays[0]).toMatchObject({ entries: 2, expired: 1, compacted: true, tornTail: false });
    expect(await readFile(file, 'utf8')).toBe('{"jti":"live","exp":1764000010}\n{"jti":"forever"}\n');
    await s.append([jti('after-compaction')]);
    expect(await readFile(file, 'utf8')).toContain('after-compaction');
    s.stop();
  });

  it('reports a corrupt line with its number and leaves the file untouched for inspection', async () => {
    const file = await journalFile();
    const text = `${entryToJson(jti('old', NOW - 10))}\n{"jti": 7}\n${entryToJson(jti('ok'))}\n`;
    await writeFile(file, text);
    const { s, replays } = await source(file, new FixedClock(NOW * 1000));
    expect(replays[0]).toMatchObject({ entries: 1, compacted: false, lineErrors: [{ line: 2, message: '"jti" must be a non-empty string' }] });
    expect(await readFile(file, 'utf8')).toBe(text);
    s.stop();
  });

  it('fails startup when the journal cannot be opened', async () => {
    const dir = await tempDir();
    await appendFile(join(dir, 'x'), '');
    const s = new JournalRevocationSource(join(dir, 'x', 'journal')); // parent is a file
    await expect(s.start()).rejects.toThrow(/revocation\.journal/);
  });
});
