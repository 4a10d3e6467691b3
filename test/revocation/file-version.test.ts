/**
 * SPEC §5 "reloaded on change": a change that keeps the file's size and mtime is still a change. A
 * black-box probe swapped one jti for another of the same length and restored the old mtime (as
 * `cp -p`, `rsync -t` or `touch -r` do), by rename and in place: the source never reloaded, and the
 * new entry stayed allowed until a SIGHUP.
 */
import { rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRevocationSource } from '../../src/revocation/file-source.ts';
import { tempDir } from '../fixtures/keys.ts';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function source(): Promise<{ file: string; src: FileRevocationSource }> {
  const dir = await tempDir('jitgate-file-version-');
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'revoked.jsonl');
  await writeFile(file, '{"jti":"t2"}\n');
  // An mtime well in the past, so nothing waits for the file to settle.
  const old = new Date(Date.now() - 60_000);
  await utimes(file, old, old);
  const src = new FileRevocationSource(file, 20);
  cleanup.push(() => src.stop());
  await src.start();
  expect([src.index.isRevoked('t2', 's', 0, undefined), src.index.isRevoked('t1', 's', 0, undefined)]).toEqual([true, false]);
  return { file, src };
}

describe('revocation.file: a change that keeps size and mtime', () => {
  it.each(['replaced by rename', 'rewritten in place'])('%s → reloaded within a few polls', async (how) => {
    const { file, src } = await source();
    const was = await stat(file);
    if (how === 'replaced by rename') {
      await writeFile(`${file}.new`, '{"jti":"t1"}\n');
      await utimes(`${file}.new`, was.atime, was.mtime);
      await rename(`${file}.new`, file);
    } else {
      await writeFile(file, '{"jti":"t1"}\n');
      await utimes(file, was.atime, was.mtime);
    }
    const now = await stat(file);
    expect([now.size, now.mtimeMs]).toEqual([was.size, was.mtimeMs]);
    await until(() => src.index.isRevoked('t1', 's', 0, undefined), 2_000, 'the new entry');
    // Dropping t2 is a removal: applied once the file has stood still for a second (file-source-removals.test.ts).
    await until(() => !src.index.isRevoked('t2', 's', 0, undefined), 3_000, 'the removal');
  });
});
