/**
 * A key file given on the command line that cannot be used is named by its flag and path, on every
 * command that reads one. A docs walk-through got `jitgate mint: ENOENT: no such file or directory,
 * open 'nokey.json'` from mint and status-list, where revoke already said which flag it was.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevKeys, type DevKeys } from '../../src/issuing/dev-keys.ts';
import { runCli } from '../fixtures/cli.ts';

let root: string;
let keys: DevKeys;
let missing: string;
let notJson: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'jitgate-key-file-errors-'));
  keys = await generateDevKeys(join(root, 'keys'));
  missing = join(root, 'nokey.json');
  notJson = join(root, 'key.txt');
  await writeFile(notJson, 'not a key\n');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const mint = (key: string, extra: string[] = []): string[] => ['mint', '--key', key, '--iss', 'https://broker.internal', '--aud', 'orders', '--sub', 's', ...extra];

describe('a key file that cannot be used: the flag and the path, exit 1', () => {
  it.each([
    ['mint --key missing', () => mint(missing), () => `jitgate mint: --key ${missing}: cannot read it (ENOENT)`],
    ['mint --key not JSON', () => mint(notJson), () => `jitgate mint: --key ${notJson} is not JSON`],
    ['mint --key a JWKS', () => mint(keys.jwksPath), () => `jitgate mint: --key ${keys.jwksPath} is a JWKS`],
    ['mint --dpop-key missing', () => mint(keys.privatePath, ['--dpop-key', missing]), () => `jitgate mint: --dpop-key ${missing}: cannot read it (ENOENT)`],
    ['status-list --key missing', () => ['status-list', '--key', missing, '--uri', 'https://lists.internal/1', '--size', '8'], () => `jitgate status-list: --key ${missing}: cannot read it (ENOENT)`],
    ['dpop-proof --key missing', () => ['dpop-proof', '--key', missing, '--method', 'GET', '--url', 'https://x.internal/'], () => `jitgate dpop-proof: --key ${missing}: cannot read it (ENOENT)`],
    ['bench --key missing', () => ['bench', '--target', 'http://127.0.0.1:9', '--key', missing, '--iss', 'https://broker.internal', '--aud', 'orders', '--duration', '1s'], () => `jitgate bench: --key ${missing}: cannot read it (ENOENT)`],
  ])('%s', async (_what, args, said) => {
    const r = await runCli(args());
    expect(r.code).toBe(1);
    expect(r.stderr.startsWith(said()), r.stderr).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
