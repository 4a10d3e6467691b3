/**
 * `admin.token_file` at start (SPEC §8): a token a request header could never carry — empty, more than
 * one line, spaces, non-ASCII, longer than MAX_ADMIN_TOKEN_CHARS — stops startup naming the key and the
 * file, never the token. `jitgate revoke --token-file` applies the same rule (test/cli/revoke-admin.test.ts).
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdminToken, MAX_ADMIN_TOKEN_CHARS } from '../../src/admin/admin-token.ts';
import { StartupError } from '../../src/errors.ts';
import { tempDir } from '../fixtures/keys.ts';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('jitgate-admin-token-');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('admin.token_file', () => {
  it.each([
    ['empty', '\n', 'the file is empty'],
    ['two lines', 'S3cretAdminToken\nsecond\n', 'one line of visible ASCII'],
    ['a space inside', 'S3cret AdminToken', 'one line of visible ASCII'],
    ['non-ASCII', 'S3cretAdminTok\u00e9n', 'one line of visible ASCII'],
    ['too long (a 10 MB token started the gate, and no header could carry it)', `S3cret${'A'.repeat(MAX_ADMIN_TOKEN_CHARS)}`, `longer than ${MAX_ADMIN_TOKEN_CHARS} characters`],
  ])('%s → a StartupError naming the key and the file, not the token', async (name, content, problem) => {
    const file = join(dir, name.split(' ')[0]!);
    await writeFile(file, content);
    let err: unknown;
    try {
      loadAdminToken(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StartupError);
    expect((err as Error).message).toMatch(new RegExp(`^admin\\.token_file ${file}: `));
    expect((err as Error).message).toContain(problem);
    expect((err as Error).message).not.toContain('S3cret');
  });

  it('a token with its trailing newline and surrounding blanks, at the length limit, is read', async () => {
    const file = join(dir, 'good');
    await writeFile(file, `  ${'a'.repeat(MAX_ADMIN_TOKEN_CHARS)}\r\n`);
    const token = loadAdminToken(file)!;
    expect(token.matches(`Bearer ${'a'.repeat(MAX_ADMIN_TOKEN_CHARS)}`)).toBe(true);
    expect(token.weak).toBe(false);
  });
});
