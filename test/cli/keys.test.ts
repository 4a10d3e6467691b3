import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify, SignJWT, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevKeys, KeyFileExistsError, SUPPORTED_ALGS } from '../../src/issuing/dev-keys.ts';
import { runCli } from '../fixtures/cli.ts';
import { CLI } from '../fixtures/servers.ts';

/** The CLI entry and the thread-pool sizing it imports first, without any command module beside them. */
/** The entry and what it imports before any command (`dir` is a `cli` folder; cpu-cores.ts lives beside it, as in src). */
async function copyEntry(dir: string): Promise<void> {
  for (const f of ['index.ts', 'init-thread-pool.ts', 'thread-pool.ts']) await copyFile(join(dirname(CLI), f), join(dir, f));
  for (const f of ['cpu-cores.ts', 'early-signals.ts']) await copyFile(join(dirname(CLI), '..', f), join(dir, '..', f));
}
const COMMAND_NAMES = ['serve', 'check-config', 'keys', 'mint', 'demo', 'dpop-proof', 'help'];

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
const readJson = async (path: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(path, 'utf8'));

let root: string;
let n = 0;
const freshDir = (): string => join(root, `case-${++n}`);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'jitgate-keys-test-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('test environment', () => {
  it('runs the CLI on Node 24 or later (type stripping needs it)', () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24);
  });
});

describe('jitgate keys (CLI)', () => {
  it('case=defaults: ES256, thumbprint kid, 0600 private key, 0700 new dir, public-only JWKS', async () => {
    const dir = join(freshDir(), 'nested');
    const res = await runCli(['keys', '--out', dir]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);

    const privatePath = join(dir, 'private.jwk.json');
    const jwksPath = join(dir, 'jwks.json');
    expect(await mode(privatePath)).toBe(0o600);
    expect(await mode(dir)).toBe(0o700);

    const priv = await readJson(privatePath);
    const jwks = (await readJson(jwksPath)) as { keys: JWK[] };
    expect(jwks.keys).toHaveLength(1);
    const pub = jwks.keys[0]!;
    expect(pub).toEqual({ kty: 'EC', crv: 'P-256', x: priv.x, y: priv.y, kid: priv.kid, alg: 'ES256', use: 'sig' });
    expect(priv).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(typeof priv.d).toBe('string');
    expect(priv.kid).toBe(await calculateJwkThumbprint(pub, 'sha256'));

    expect(res.stdout).toContain(privatePath);
    expect(res.stdout).toContain(jwksPath);
    expect(res.stdout).toContain(String(priv.kid));
  });

  it('case=kid-and-alg flags: --alg EdDSA --kid dev-1', async () => {
    const dir = freshDir();
    const res = await runCli(['keys', '--alg', 'EdDSA', '--out', dir, '--kid', 'dev-1']);
    expect(res.code).toBe(0);
    const priv = await readJson(join(dir, 'private.jwk.json'));
    expect(priv).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: 'dev-1', alg: 'EdDSA', use: 'sig' });
    expect(res.stdout).toMatch(/kid:\s+dev-1\n/);
  });

  it('case=refuses-overwrite: exit 1, names the file and --force, leaves the key untouched', async () => {
    const dir = freshDir();
    expect((await runCli(['keys', '--out', dir])).code).toBe(0);
    const before = await readFile(join(dir, 'private.jwk.json'), 'utf8');
    const res = await runCli(['keys', '--out', dir]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(join(dir, 'private.jwk.json'));
    expect(res.stderr).toContain('--force');
    expect(await readFile(join(dir, 'private.jwk.json'), 'utf8')).toBe(before);
  });

  it('case=refuses-overwrite of a key set alone: jwks.json without private.jwk.json is not replaced unasked', async () => {
    const dir = freshDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'jwks.json'), '{"keys":[{"kid":"old"}]}\n');
    const res = await runCli(['keys', '--out', dir]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`${join(dir, 'jwks.json')} already exists; pass --force`);
    expect(await readFile(join(dir, 'jwks.json'), 'utf8')).toBe('{"keys":[{"kid":"old"}]}\n');
    expect((await runCli(['keys', '--out', dir, '--force'])).code).toBe(0);
  });

  it('case=force: replaces the key, and the replacement is 0600 even if the old file was not', async () => {
    const dir = freshDir();
    const first = await generateDevKeys(dir);
    await chmod(first.privatePath, 0o644);
    const res = await runCli(['keys', '--out', dir, '--force']);
    expect(res.code).toBe(0);
    const priv = await readJson(first.privatePath);
    expect(priv.kid).not.toBe(first.kid);
    expect(await mode(first.privatePath)).toBe(0o600);
    const jwks = (await readJson(first.jwksPath)) as { keys: JWK[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual([priv.kid]);
  });

  it('case=existing-dir: its mode is left alone', async () => {
    const dir = freshDir();
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    await generateDevKeys(dir);
    expect(await mode(dir)).toBe(0o755);
  });

  it.each([
    [['keys', '--out', 'x', '--bogus'], "'--bogus'"],
    [['keys', '--out', 'x', '--alg', 'HS256'], 'HS256'],
    [['keys', '--alg', 'ES256'], '--out'],
    [['keys', '--out'], '--out'],
    [['keys', '--out', 'x', 'extra'], "'extra'"],
  ])('case=usage-error %j: exit 2 naming %s', async (args, named) => {
    const res = await runCli(args);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(named);
    expect(res.stdout).toBe('');
  });

  it('case=help: --help prints the flags on stdout', async () => {
    const res = await runCli(['keys', '--help']);
    expect(res.code).toBe(0);
    for (const flag of ['--out', '--alg', '--kid', '--force']) expect(res.stdout).toContain(flag);
  });
});

describe('generateDevKeys (library)', () => {
  it.each(SUPPORTED_ALGS.map((alg) => [alg]))('alg=%s: the private key signs, the JWKS verifies', async (alg) => {
    const keys = await generateDevKeys(freshDir(), { alg });
    expect(keys.alg).toBe(alg);
    const priv = (await readJson(keys.privatePath)) as JWK;
    expect(priv).toMatchObject({ alg, kid: keys.kid, use: 'sig' });
    const expected: Record<string, object> = {
      EdDSA: { kty: 'OKP', crv: 'Ed25519' },
      ES256: { kty: 'EC', crv: 'P-256' },
      ES384: { kty: 'EC', crv: 'P-384' },
      PS256: { kty: 'RSA' },
      RS256: { kty: 'RSA' },
    };
    expect(priv).toMatchObject(expected[alg]!);
    expect(await mode(keys.privatePath)).toBe(0o600);

    const jwks = (await readJson(keys.jwksPath)) as { keys: JWK[] };
    for (const privateMember of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(jwks.keys[0]).not.toHaveProperty(privateMember);
    const token = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg, kid: keys.kid })
      .sign(await importJWK(priv, alg));
    const { protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks as { keys: JWK[] }), { algorithms: [alg] });
    expect(protectedHeader.kid).toBe(keys.kid);
  });

  it('refuses overwrite with KeyFileExistsError (stable code) unless force', async () => {
    const dir = freshDir();
    await generateDevKeys(dir);
    const err = await generateDevKeys(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyFileExistsError);
    expect(err).toMatchObject({ code: 'JITGATE_KEY_FILE_EXISTS', path: join(dir, 'private.jwk.json') });
    await expect(generateDevKeys(dir, { force: true })).resolves.toMatchObject({ alg: 'ES256' });
  });

  it('rejects an unsupported alg and an empty kid with TypeError, writing nothing', async () => {
    const dir = freshDir();
    await expect(generateDevKeys(dir, { alg: 'HS256' })).rejects.toThrow(TypeError);
    await expect(generateDevKeys(dir, { alg: 'none' })).rejects.toThrow(/unsupported alg "none"/);
    await expect(generateDevKeys(dir, { kid: '' })).rejects.toThrow(TypeError);
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

// The entry's own behaviour (kept here because this task may only touch the keys and mint test files).
describe('jitgate entry (src/cli/index.ts)', () => {
  it.each([['--help'], ['-h'], ['help']])('%s lists every command on stdout, exit 0', async (flag) => {
    const res = await runCli([flag]);
    expect(res.code).toBe(0);
    for (const name of COMMAND_NAMES) expect(res.stdout).toMatch(new RegExp(`^  ${name}\\b.*\\S`, 'm'));
  });

  it('no command: usage on stderr, exit 2', async () => {
    const res = await runCli([]);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('Usage: jitgate');
  });

  it('unknown command: exit 2, names it, usage on stderr', async () => {
    const res = await runCli(['frobnicate']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('unknown command "frobnicate"');
    expect(res.stderr).toContain('Usage: jitgate');
    expect((await runCli(['constructor'])).stderr).toContain('unknown command "constructor"');
  });

  it('unknown global flag: exit 2 naming it', async () => {
    const res = await runCli(['--frob', 'keys']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("'--frob'");
  });

  it('help COMMAND and --help COMMAND show that command\'s help', async () => {
    for (const args of [['help', 'keys'], ['--help', 'keys']]) {
      const res = await runCli(args);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain('Usage: jitgate keys');
    }
  });

  it('a command whose module is not in this build: exit 2, "not available"', async () => {
    // A copy of the entry alone, so no command module is beside it (every command now exists in src/cli).
    const dir = join(freshDir(), 'cli');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '..', 'package.json'), '{"type":"module"}\n');
    await copyEntry(dir);
    const res = await runCli(['dpop-proof'], { entry: join(dir, 'index.ts') });
    expect(res.code).toBe(2);
    expect(res.stderr).toBe('jitgate: command "dpop-proof" is not available in this build\n');
  });

  it('dispatch in a copy of the entry: argv and exit code pass through; a missing import inside a command surfaces', async () => {
    const dir = join(freshDir(), 'cli');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '..', 'package.json'), '{"type":"module"}\n');
    await copyEntry(dir);
    await writeFile(
      join(dir, 'demo.ts'),
      'export async function run(argv: string[]): Promise<number> { process.stdout.write(JSON.stringify(argv)); return 7; }\n',
    );
    await writeFile(join(dir, 'serve.ts'), "import './missing-helper.ts';\nexport async function run() { return 0; }\n");
    const entry = join(dir, 'index.ts');

    const demo = await runCli(['demo', 'a', '--b'], { entry });
    expect(demo).toEqual({ code: 7, stdout: '["a","--b"]', stderr: '' });

    const serve = await runCli(['serve'], { entry });
    expect(serve.code).toBe(1);
    expect(serve.stderr).toContain('missing-helper.ts');
    expect(serve.stderr).not.toContain('not available');

    expect((await runCli(['check-config'], { entry })).stderr).toContain('"check-config" is not available');
  });
});
