import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevKeys, type DevKeys } from '../../src/issuing/dev-keys.ts';
import { mintToken, type MintOptions } from '../../src/issuing/mint-token.ts';
import { runCli } from '../fixtures/cli.ts';

const ISS = 'https://broker.internal';
const COMPACT_JWS_LINE = /^[\w-]+\.[\w-]+\.[\w-]+\n$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

let root: string;
let es256: DevKeys;
let eddsa: DevKeys;
let jwks: JWTVerifyGetKey;
let privateJwk: JWK;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'jitgate-mint-test-'));
  es256 = await generateDevKeys(join(root, 'es256'));
  eddsa = await generateDevKeys(join(root, 'eddsa'), { alg: 'EdDSA', kid: 'ed-1' });
  const es = JSON.parse(await readFile(es256.jwksPath, 'utf8')) as { keys: JWK[] };
  const ed = JSON.parse(await readFile(eddsa.jwksPath, 'utf8')) as { keys: JWK[] };
  jwks = createLocalJWKSet({ keys: [...es.keys, ...ed.keys] });
  privateJwk = JSON.parse(await readFile(es256.privatePath, 'utf8')) as JWK;
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Mints through the CLI and checks that stdout is exactly one compact JWS and a newline. */
async function mintCli(args: readonly string[]): Promise<string> {
  const res = await runCli(['mint', '--key', es256.privatePath, '--iss', ISS, '--sub', 'spiffe://prod/ci', ...args]);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(COMPACT_JWS_LINE);
  return res.stdout.trimEnd();
}

describe('jitgate mint (CLI)', () => {
  it('case=minimal grant: verifies against the JWKS; aud is a string; exact claims and header', async () => {
    const before = nowSeconds();
    const token = await mintCli(['--aud', 'orders', '--action', 'GET', '--action', 'PATCH', '--path', '/orders/42', '--path', '/orders/42/**']);
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: ISS, audience: 'orders', typ: 'jit+jwt' });

    expect(protectedHeader).toEqual({ alg: 'ES256', kid: es256.kid, typ: 'jit+jwt' });
    expect(Object.keys(payload).sort()).toEqual(['aud', 'authorization_details', 'exp', 'iat', 'iss', 'jti', 'sub']);
    expect(payload).toMatchObject({ iss: ISS, aud: 'orders', sub: 'spiffe://prod/ci' });
    expect(payload.authorization_details).toEqual([
      { type: 'jit_grant', actions: ['GET', 'PATCH'], paths: ['/orders/42', '/orders/42/**'] },
    ]);
    expect(payload.jti).toMatch(UUID);
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(nowSeconds());
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it('case=every flag: each lands exactly where asked', async () => {
    const token = await mintCli([
      '--aud', 'orders', '--aud', 'billing',
      '--action', 'read', '--path', '/orders/*', '--location', 'https://orders.internal', '--location', 'https://b.internal',
      '--ttl', '90s', '--iat', '1764000000', '--nbf', '1764000010',
      '--txn', 'deploy-4711', '--jti', 'jti-1', '--act', 'spiffe://prod/human', '--cnf-jkt', 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
      '--kid', 'other-kid', '--typ', 'application/jit+jwt', '--grant-type', 'custom_grant',
      '--claim', 'extra={"n":[1,2]}', '--claim', 'sub="overridden"',
    ]);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: 'other-kid', typ: 'application/jit+jwt' });
    expect(decodeJwt(token)).toEqual({
      iss: ISS,
      aud: ['orders', 'billing'],
      sub: 'overridden',
      jti: 'jti-1',
      iat: 1764000000,
      nbf: 1764000010,
      exp: 1764000090,
      txn: 'deploy-4711',
      act: { sub: 'spiffe://prod/human' },
      cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
      authorization_details: [
        {
          type: 'custom_grant',
          actions: ['read'],
          paths: ['/orders/*'],
          locations: ['https://orders.internal', 'https://b.internal'],
        },
      ],
      extra: { n: [1, 2] },
    });
  });

  it('case=already expired: --iat -20m --ttl 5m (separate and = forms)', async () => {
    for (const iatArgs of [['--iat', '-20m'], ['--iat=-20m']]) {
      // The CLI reads the clock somewhere between these two readings (a loaded box can take seconds to start it).
      const before = nowSeconds();
      const token = await mintCli(['--aud', 'orders', ...iatArgs, '--ttl', '5m']);
      const after = nowSeconds();
      const payload = decodeJwt(token);
      expect(payload.iat!).toBeGreaterThanOrEqual(before - 1200);
      expect(payload.iat!).toBeLessThanOrEqual(after - 1200);
      expect(payload.exp! - payload.iat!).toBe(300);
      await expect(jwtVerify(token, jwks, { audience: 'orders' })).rejects.toMatchObject({ code: 'ERR_JWT_EXPIRED' });
      // Only the time is wrong: the signature is good.
      await jwtVerify(token, jwks, { currentDate: new Date((payload.iat! + 1) * 1000) });
    }
  });

  it('case=offsets: --nbf +1m, --iat +0s; no authorization_details without --action/--path; --typ "" omits typ', async () => {
    const before = nowSeconds();
    const token = await mintCli(['--aud', 'orders', '--nbf', '+1m', '--iat', '+0s', '--typ', '']);
    const after = nowSeconds();
    const payload = decodeJwt(token);
    expect(payload.nbf!).toBeGreaterThanOrEqual(before + 60);
    expect(payload.nbf!).toBeLessThanOrEqual(after + 60);
    expect(payload).not.toHaveProperty('authorization_details');
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: es256.kid });
  });

  it('case=claim removal: --claim jti= drops the claim', async () => {
    const token = await mintCli(['--aud', 'orders', '--claim', 'jti=']);
    expect(decodeJwt(token)).not.toHaveProperty('jti');
  });

  it.each([
    [['--aud', 'orders', '--bogus'], "'--bogus'"],
    [['--aud', 'orders', '--action', 'GET'], '--path'],
    [['--aud', 'orders', '--path', '/x'], '--action'],
    [['--aud', 'orders', '--location', 'https://x'], '--location'],
    [['--aud', 'orders', '--ttl', '300'], '--ttl'],
    [['--aud', 'orders', '--ttl', '1500ms'], '--ttl'],
    [['--aud', 'orders', '--iat', '10m'], '--iat'],
    [['--aud', 'orders', '--nbf', 'soon'], '--nbf'],
    [['--aud', 'orders', '--claim', 'x=notjson'], '--claim x'],
    [['--aud', 'orders', '--claim', '=1'], '--claim'],
    [[], '--aud'],
    // Tokens every gate would refuse whole (a twelfth-round probe: they were signed, exit 0).
    [['--aud', 'orders', '--action', 'GET', '--path', '/a/**/b'], '--path: "/a/**/b" is not a grant path pattern'],
    [['--aud', 'orders', '--action', 'GET', '--path', 'orders'], '--path: "orders" is not a grant path pattern'],
    [['--aud', 'orders', '--action', 'GET', '--path', '/a/./b'], '--path: "/a/./b"'],
    [['--aud', 'orders', '--action', '', '--path', '/a'], '--action: must not be empty'],
    [['--aud', 'orders', '--jti', ''], '--jti: must not be empty'],
    [['--aud', 'orders', '--kid', ''], '--kid: must not be empty'],
    [['--aud', ''], '--aud: must not be empty'],
    [['--aud', 'orders', '--cnf-jkt', 'abc'], '--cnf-jkt: expected a JWK SHA-256 thumbprint'],
    [['--aud', 'orders', '--ttl=0s'], '--ttl: expected whole seconds above 0'],
    [['--aud', 'orders', '--iat', '9007199254740993'], '--iat: 9007199254740993 is outside 0..2^53'],
    [['--aud', 'orders', '--iat', '+99999999999999d'], '--iat: +99999999999999d is outside 0..2^53'],
    // The gate's rule for identifier claims (a re-probe: each of these was signed and refused invalid_claims).
    [['--aud', 'orders', '--jti', ' x'], '--jti: expected 1–1024 visible ASCII characters'],
    [['--aud', 'orders', '--txn', 'a\x01b'], '--txn: expected 1–1024 visible ASCII characters'],
    [['--aud', 'orders', '--act', 'é'], '--act: expected 1–1024 visible ASCII characters'],
    [['--aud', 'orders', '--txn', 'a'.repeat(1025)], '--txn: expected 1–1024'],
    [['--aud', 'orders', '--cnf-jkt', `${'A'.repeat(42)}B`], '--cnf-jkt: expected a JWK SHA-256 thumbprint'],
    [['--aud', 'orders', '--nbf', '+1h', '--ttl', '5m'], '--nbf: at or after exp'],
  ])('case=usage error %j: exit 2 naming %s, nothing on stdout', async (args, named) => {
    const res = await runCli(['mint', '--key', es256.privatePath, '--iss', ISS, '--sub', 's', ...args]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(named);
    expect(res.stdout).toBe('');
  });

  it('case=a subject no gate accepts (space at an end): exit 2', async () => {
    const res = await runCli(['mint', '--key', es256.privatePath, '--iss', ISS, '--aud', 'orders', '--sub', ' s']);
    expect([res.code, res.stdout]).toEqual([2, '']);
    expect(res.stderr).toContain('--sub: expected 1–1024 visible ASCII characters');
  });

  it.each(['--key', '--iss', '--sub'])('case=missing required %s: exit 2 naming it', async (flag) => {
    const all = new Map([['--key', es256.privatePath], ['--iss', ISS], ['--sub', 's']]);
    all.delete(flag);
    const res = await runCli(['mint', '--aud', 'a', ...[...all].flat()]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(flag);
  });

  it('case=bad key file: missing file or a JWKS instead of a private key → exit 1 with the path', async () => {
    for (const key of [join(root, 'nope.json'), es256.jwksPath]) {
      const res = await runCli(['mint', '--key', key, '--iss', ISS, '--aud', 'a', '--sub', 's']);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(key);
      expect(res.stdout).toBe('');
    }
  });

  it('case=a token above the default headers.max_token_bytes → a warning naming it; above any gate\'s ceiling → exit 1, no token', async () => {
    const args = ['mint', '--key', es256.privatePath, '--iss', ISS, '--aud', 'a', '--sub', 's'];
    const big = await runCli([...args, '--claim', `pad="${'x'.repeat(7000)}"`]);
    expect(big.code).toBe(0);
    const token = big.stdout.trimEnd();
    expect(token.length).toBeGreaterThan(8192);
    expect(big.stderr).toBe(`jitgate mint: warning: the token is ${token.length} bytes; a gate with the default headers.max_token_bytes (8192) refuses it (token_too_large)\n`);
    const huge = await runCli([...args, '--claim', `pad="${'x'.repeat(50_000)}"`]);
    expect(huge.code).toBe(1);
    expect(huge.stdout).toBe('');
    expect(huge.stderr).toMatch(/^jitgate mint: the token is \d+ bytes, above 65536, the most any gate's headers.max_token_bytes allows; every gate refuses it \(token_too_large\)\n$/);
    const small = await runCli([...args, '--claim', `pad="${'x'.repeat(5000)}"`]);
    expect(small.stderr).toBe('');
    expect(small.code).toBe(0);
  });
});

describe('mintToken (library)', () => {
  const base = (): MintOptions => ({ key: privateJwk, iss: ISS, aud: 'orders', sub: 'spiffe://prod/ci' });

  it('takes a JWK object or a path; defaults match the CLI', async () => {
    for (const key of [privateJwk, es256.privatePath]) {
      const token = await mintToken({ ...base(), key, actions: ['GET'], paths: ['/x'] });
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: ISS, audience: 'orders' });
      expect(protectedHeader).toEqual({ alg: 'ES256', kid: es256.kid, typ: 'jit+jwt' });
      expect(payload.exp! - payload.iat!).toBe(300);
      expect(payload.authorization_details).toEqual([{ type: 'jit_grant', actions: ['GET'], paths: ['/x'] }]);
    }
  });

  it('EdDSA key: header alg and kid come from the key', async () => {
    const token = await mintToken({ ...base(), key: eddsa.privatePath });
    const { protectedHeader } = await jwtVerify(token, jwks, { algorithms: ['EdDSA'] });
    expect(protectedHeader).toEqual({ alg: 'EdDSA', kid: 'ed-1', typ: 'jit+jwt' });
  });

  it('aud array of one stays an array; iat/ttl/nbf exact; typ null omits; extraClaims undefined removes', async () => {
    const token = await mintToken({
      ...base(),
      aud: ['orders'],
      iat: 1_700_000_000,
      ttlSeconds: 60,
      nbf: 1_700_000_005,
      typ: null,
      extraClaims: { jti: undefined, iss: 'https://evil.internal' },
    });
    const payload: JWTPayload = decodeJwt(token);
    expect(payload).toEqual({ iss: 'https://evil.internal', sub: 'spiffe://prod/ci', aud: ['orders'], iat: 1_700_000_000, nbf: 1_700_000_005, exp: 1_700_000_060 });
    expect(decodeProtectedHeader(token)).not.toHaveProperty('typ');
  });

  it('a "__proto__" claim stays an ordinary claim', async () => {
    const token = await mintToken({ ...base(), extraClaims: JSON.parse('{"__proto__":{"admin":true}}') });
    const json = Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8');
    expect(json).toContain('"__proto__":{"admin":true}');
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('misuse is a TypeError', async () => {
    const { d: _d, ...publicJwk } = privateJwk;
    const { alg: _alg, ...noAlg } = privateJwk;
    await expect(mintToken({ ...base(), actions: ['GET'] })).rejects.toThrow(TypeError);
    await expect(mintToken({ ...base(), paths: ['/x'] })).rejects.toThrow(TypeError);
    await expect(mintToken({ ...base(), locations: ['https://x'] })).rejects.toThrow(TypeError);
    await expect(mintToken({ ...base(), key: publicJwk })).rejects.toThrow(/private JWK/);
    await expect(mintToken({ ...base(), key: noAlg })).rejects.toThrow(/alg/);
    await expect(mintToken({ ...base(), key: es256.jwksPath })).rejects.toThrow(/JWKS/);
    await expect(mintToken({ ...base(), ttlSeconds: Number.NaN })).rejects.toThrow(TypeError);
    // CONNECT is 400 on every transport (SPEC §2): a grant naming it would promise what no gate does.
    await expect(mintToken({ ...base(), actions: ['GET', 'CONNECT'], paths: ['/x'] })).rejects.toThrow(/CONNECT is never granted/);
    // With alg given explicitly a key without one signs fine.
    await expect(mintToken({ ...base(), key: noAlg, alg: 'ES256' })).resolves.toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });
});
