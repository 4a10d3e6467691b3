/**
 * Importing a JWKS (src/keys/key-set.ts): RSA keys that import but cannot be trusted are skipped
 * with why (an exponent of 1 lets anyone forge a signature), a JWK whose `alg` changed is a new
 * entry, and a jwks_file reloaded unchanged keeps its entries (what they verified still counts).
 */
import { generateKeyPairSync } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuerConfig } from '../../src/config/schema.ts';
import { FileIssuerKeys } from '../../src/keys/issuer-keys.ts';
import { importJwks } from '../../src/keys/key-set.ts';
import { jwksOf, makeKey, tempDir } from '../fixtures/keys.ts';
import { ISSUER_A } from '../fixtures/tokens.ts';

let rsa: Record<string, string>;
let dir: string;

beforeAll(async () => {
  rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }) as Record<string, string>;
  dir = await tempDir('jitgate-keyset-');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const b64 = (bytes: number[]): string => Buffer.from(bytes).toString('base64url');

describe('RSA keys that import but cannot be trusted', () => {
  it.each([
    ['exponent 1', { e: b64([1]) }, /exponent below 3/],
    ['exponent 0', { e: b64([0]) }, /exponent below 3/],
    ['an even exponent', { e: b64([1, 0, 0]) }, /even RSA exponent/],
    ['a 40-bit exponent', { e: b64([1, 0, 0, 0, 1]) }, /more than 32 bits/],
  ])('%s → skipped with why', async (_name, patch, why) => {
    const { set, skipped } = await importJwks({ keys: [{ ...rsa, kid: 'r', ...patch }] }, ['RS256']);
    expect(set.size).toBe(0);
    expect(skipped.join('; ')).toMatch(why);
  });

  it('an even modulus, and one of 20,000 bits → skipped; 65537 and 3 import', async () => {
    const n = Buffer.from(rsa.n!, 'base64url');
    n[n.length - 1]! &= 0xfe;
    const even = await importJwks({ keys: [{ ...rsa, kid: 'r', n: n.toString('base64url') }] }, ['RS256']);
    expect(even.skipped.join()).toMatch(/even RSA modulus/);
    const huge = Buffer.alloc(2500, 0xff);
    const big = await importJwks({ keys: [{ ...rsa, kid: 'r', n: huge.toString('base64url') }] }, ['RS256']);
    expect(big.skipped.join()).toMatch(/20000 bits; at most 16384/);
    expect((await importJwks({ keys: [{ ...rsa, kid: 'r' }] }, ['RS256'])).set.size).toBe(1);
    expect((await importJwks({ keys: [{ ...rsa, kid: 'r', e: b64([3]) }] }, ['RS256'])).set.size).toBe(1);
  });
});

describe('what a JWK says it is for', () => {
  it('key_ops without "verify", or not distinct strings → skipped (jose refuses to verify with it); with "verify", or without key_ops, imported (a review)', async () => {
    for (const ops of [['encrypt'], [], 'verify', ['verify', 'verify'], [1, 'verify']]) {
      const { set, skipped } = await importJwks({ keys: [{ ...rsa, kid: 'r', key_ops: ops }] }, ['RS256']);
      expect([set.size, skipped.join()]).toEqual([0, 'keys[0]: key_ops is not a list of distinct strings that names "verify"']);
    }
    expect((await importJwks({ keys: [{ ...rsa, kid: 'r', key_ops: ['verify', 'encrypt'] }] }, ['RS256'])).set.size).toBe(1);
    expect((await importJwks({ keys: [{ ...rsa, kid: 'r' }] }, ['RS256'])).set.size).toBe(1);
  });
});

describe('entries across imports', () => {
  it('a JWK whose alg changed (RS256 → PS256) is a new entry verifying only the new alg (a review)', async () => {
    const first = await importJwks({ keys: [{ ...rsa, kid: 'r', alg: 'RS256' }] }, ['RS256', 'PS256']);
    const old = first.set.entryFor('r', 'RS256')!;
    expect([...old.keys.keys()]).toEqual(['RS256']);
    const second = await importJwks({ keys: [{ ...rsa, kid: 'r', alg: 'PS256' }] }, ['RS256', 'PS256'], first.set);
    expect(second.set.has(old)).toBe(false);
    expect(second.set.entryFor('r', 'RS256')).toBeUndefined();
    expect([...second.set.entryFor('r', 'PS256')!.keys.keys()]).toEqual(['PS256']);
    // Unchanged: the same entry.
    const third = await importJwks({ keys: [{ ...rsa, kid: 'r', alg: 'PS256' }] }, ['RS256', 'PS256'], second.set);
    expect(third.set.entryFor('r', 'PS256')).toBe(second.set.entryFor('r', 'PS256'));
  });

  it('a jwks_file reloaded (SIGHUP) keeps the entries of unchanged keys, drops removed ones (a re-probe: held status lists were dropped)', async () => {
    const [k1, k2] = await Promise.all([makeKey('ES256', 'k1'), makeKey('ES256', 'k2')]);
    const file = join(dir, 'jwks.json');
    await writeFile(file, JSON.stringify(jwksOf(k1, k2)));
    const keys = new FileIssuerKeys({ issuer: ISSUER_A, jwks_file: file, algorithms: ['ES256'] } as IssuerConfig);
    await keys.start();
    const e1 = keys.resolve('k1', 'ES256')!;
    const e2 = keys.resolve('k2', 'ES256')!;
    await keys.reload();
    expect(keys.has(e1)).toBe(true);
    await writeFile(file, JSON.stringify(jwksOf(k1)));
    await keys.reload();
    expect(keys.has(e1)).toBe(true);
    expect(keys.has(e2)).toBe(false);
  });

  it('a jwks_file reloaded with an empty keys array withdraws every key (as a remote JWKS does); at start it is refused (a re-probe)', async () => {
    const k1 = await makeKey('ES256', 'k1');
    const file = join(dir, 'withdraw.json');
    await writeFile(file, JSON.stringify({ keys: [] }));
    const fresh = new FileIssuerKeys({ issuer: ISSUER_A, jwks_file: file, algorithms: ['ES256'] } as IssuerConfig);
    await expect(fresh.start()).rejects.toThrow(/no usable key/);
    await writeFile(file, JSON.stringify(jwksOf(k1)));
    const keys = new FileIssuerKeys({ issuer: ISSUER_A, jwks_file: file, algorithms: ['ES256'] } as IssuerConfig);
    await keys.start();
    const e1 = keys.resolve('k1', 'ES256')!;
    await writeFile(file, JSON.stringify({ keys: [] }));
    expect(await keys.reload()).toBe(0);
    expect(keys.has(e1)).toBe(false);
    expect(keys.resolve('k1', 'ES256')).toBeUndefined();
  });
});
