/**
 * `jitgate mint --cnf-cert FILE` (SPEC §11, RFC 8705 §3.1): the token's cnf["x5t#S256"] is the
 * base64url SHA-256 of the certificate's DER — the same value the gate computes for a TLS peer.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevKeys, type DevKeys } from '../../src/issuing/dev-keys.ts';
import { mintToken } from '../../src/issuing/mint-token.ts';
import { runCli } from '../fixtures/cli.ts';
import { tempDir } from '../fixtures/keys.ts';
import { makePki, type Pki } from '../fixtures/pki.ts';

let pki: Pki;
let dir: string;
let keys: DevKeys;

beforeAll(async () => {
  [pki, dir] = await Promise.all([makePki(), tempDir('jitgate-mint-cnf-')]);
  keys = await generateDevKeys(join(dir, 'keys'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await pki?.remove();
});

const base = () => ['mint', '--key', keys.privatePath, '--iss', 'https://broker.internal', '--aud', 'orders', '--sub', 'spiffe://prod/ci-deployer'];

describe('jitgate mint --cnf-cert', () => {
  it('binds the token to the certificate: cnf["x5t#S256"] is its SHA-256 thumbprint', async () => {
    const r = await runCli([...base(), '--cnf-cert', pki.workloadA.cert]);
    expect(r.code).toBe(0);
    expect(decodeJwt(r.stdout.trim()).cnf).toEqual({ 'x5t#S256': pki.workloadA.x5t });
  });

  it('combines with a DPoP binding (both are enforced by the gate)', async () => {
    const token = await mintToken({ key: keys.privatePath, iss: 'i', aud: 'a', sub: 's', cnfJkt: 'jkt-1', cnfCert: pki.workloadB.cert });
    expect(decodeJwt(token).cnf).toEqual({ jkt: 'jkt-1', 'x5t#S256': pki.workloadB.x5t });
  });

  it('exits 1 naming the file when it is missing or not a certificate', async () => {
    const missing = await runCli([...base(), '--cnf-cert', join(dir, 'nope.pem')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read certificate');
    const notCert = await runCli([...base(), '--cnf-cert', pki.workloadA.key]);
    expect(notCert.code).toBe(1);
    expect(notCert.stderr).toContain('is not a PEM certificate');
  });

  it('exits 1 for a CA certificate (the bundle given by mistake): a token bound to it could never be used', async () => {
    const ca = await runCli([...base(), '--cnf-cert', pki.ca.cert]);
    expect(ca.code).toBe(1);
    expect(ca.stderr).toContain('the first certificate is a CA certificate');
    expect(ca.stdout).toBe('');
  });
});
