/**
 * `jitgate mint --dpop-key` + `jitgate dpop-proof`: the real CLI in child processes makes a bound
 * token and a proof, and a real Gate (system clock) over the JWKS `jitgate keys` wrote accepts them.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDpopProof } from '../../src/cli/dpop-proof.ts';
import { generateDevKeys, type DevKeys } from '../../src/issuing/dev-keys.ts';
import { mintToken } from '../../src/issuing/mint-token.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { DecisionInput } from '../../src/core/decision.ts';
import { accessTokenHash } from '../../src/core/token.ts';
import { Gate } from '../../src/gate.ts';
import { runCli } from '../fixtures/cli.ts';

const ISS = 'https://broker.internal';
const COMPACT_JWS_LINE = /^[\w-]+\.[\w-]+\.[\w-]+\n$/;

let root: string;
let issuer: DevKeys;
let client: DevKeys;
let clientJwk: JWK;
let gate: Gate;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'jitgate-dpop-cli-'));
  issuer = await generateDevKeys(join(root, 'issuer'));
  client = await generateDevKeys(join(root, 'client'), { alg: 'EdDSA' });
  clientJwk = JSON.parse(await readFile(client.privatePath, 'utf8')) as JWK;
  const config = validateConfig(
    {
      upstream: { url: 'http://127.0.0.1:9' },
      service: { audience: 'orders' },
      issuers: [{ issuer: ISS, jwks_file: issuer.jwksPath, algorithms: ['ES256'], typ: 'jit+jwt' }],
      dpop: { external_origin: 'https://orders.internal' },
    },
    join(root, 'jitgate.yaml'),
  );
  gate = new Gate(config, join(root, 'jitgate.yaml'));
  await gate.start();
});
afterAll(async () => {
  gate.stop();
  await rm(root, { recursive: true, force: true });
});

function request(method: string, target: string, token: string, proof: string): DecisionInput {
  return { method, target, authorization: `DPoP ${token}`, authorizationCount: 1, dpop: proof, dpopCount: 1, methodOverride: false };
}

describe('jitgate mint --dpop-key + jitgate dpop-proof (CLI)', () => {
  it('case=end to end: the gate accepts the pair once, and refuses the replayed proof', async () => {
    const minted = await runCli([
      'mint', '--key', issuer.privatePath, '--iss', ISS, '--aud', 'orders', '--sub', 'spiffe://prod/ci',
      '--action', 'GET', '--path', '/orders/42/**', '--dpop-key', client.privatePath,
    ]);
    expect(minted.stderr).toBe('');
    expect(minted.code).toBe(0);
    expect(minted.stdout).toMatch(COMPACT_JWS_LINE);
    const token = minted.stdout.trimEnd();
    // cnf.jkt is the thumbprint of the client's public key (the private file's thumbprint is the same by RFC 7638).
    expect(decodeJwt(token).cnf).toEqual({ jkt: await calculateJwkThumbprint(clientJwk, 'sha256') });

    const url = 'https://orders.internal/orders/42/items?limit=5#top';
    const made = await runCli(['dpop-proof', '--key', client.privatePath, '--method', 'GET', '--url', url, '--token', token]);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(COMPACT_JWS_LINE);
    const proof = made.stdout.trimEnd();

    const header = decodeProtectedHeader(proof);
    expect(header).toEqual({ typ: 'dpop+jwt', alg: 'EdDSA', jwk: { kty: 'OKP', crv: 'Ed25519', x: clientJwk.x } });
    const claims = decodeJwt(proof);
    expect(claims).toMatchObject({ htm: 'GET', htu: 'https://orders.internal/orders/42/items', ath: accessTokenHash(token) });
    expect(Object.keys(claims).sort()).toEqual(['ath', 'htm', 'htu', 'iat', 'jti']);

    const first = await gate.decide(request('GET', '/orders/42/items?limit=5', token, proof));
    expect(`${first.kind}:${first.reason}`).toBe('allow:granted');
    const again = await gate.decide(request('GET', '/orders/42/items?limit=5', token, proof));
    expect(`${again.kind}:${again.reason}`).toBe('deny:dpop_replay');
  });

  it('case=usage errors: missing --url, bad --method, --cnf-jkt with --dpop-key → exit 2', async () => {
    const noUrl = await runCli(['dpop-proof', '--key', client.privatePath, '--method', 'GET']);
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain('missing required option --url');
    const both = await runCli(['mint', '--key', issuer.privatePath, '--iss', ISS, '--aud', 'orders', '--sub', 's', '--cnf-jkt', 'x', '--dpop-key', client.privatePath]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--cnf-jkt and --dpop-key both bind the token');
    const badMethod = await runCli(['dpop-proof', '--key', client.privatePath, '--method', 'G E T', '--url', 'https://x/']);
    expect(badMethod.code).toBe(2);
    // Proofs no gate accepts; the first also signed the URL's password into the proof.
    for (const [more, message] of [
      [['--url', 'http://u:secret@127.0.0.1:8080/orders/42'], '--url: leave out the user info'],
      [['--url', 'https://x/', '--jti', ''], '--jti: must not be empty'],
      [['--url', 'https://x/', '--token', ''], '--token: must not be empty'],
    ] as const) {
      const r = await runCli(['dpop-proof', '--key', client.privatePath, '--method', 'GET', ...more]);
      expect([r.code, r.stdout]).toEqual([2, '']);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain('secret');
    }
  });
});

describe('makeDpopProof / mintToken (library)', () => {
  it('adds nonce, iat and jti when given; leaves ath out without a token; never puts private members in the header', async () => {
    const proof = await makeDpopProof({ key: clientJwk, method: 'POST', url: 'http://a.example:8080/x', nonce: 'n-1', iat: 1_764_000_000, jti: 'j-1' });
    expect(decodeJwt(proof)).toEqual({ jti: 'j-1', htm: 'POST', htu: 'http://a.example:8080/x', iat: 1_764_000_000, nonce: 'n-1' });
    expect(JSON.stringify(decodeProtectedHeader(proof))).not.toMatch(/"d"|"kid"/);
  });

  it('refuses a public key, a URL that is not absolute http(s), and cnfJkt with dpopKey', async () => {
    const pub = { kty: 'OKP', crv: 'Ed25519', x: clientJwk.x, alg: 'EdDSA' };
    await expect(makeDpopProof({ key: pub, method: 'GET', url: 'https://x/' })).rejects.toThrow(/private JWK/);
    await expect(makeDpopProof({ key: clientJwk, method: 'GET', url: '/relative' })).rejects.toThrow(/absolute http\(s\) URL/);
    await expect(mintToken({ key: issuer.privatePath, iss: ISS, aud: 'orders', sub: 's', cnfJkt: 'x', dpopKey: clientJwk })).rejects.toThrow(/not both/);
  });
});
