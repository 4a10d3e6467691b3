/**
 * The raw signature-verification rate of this machine for the run's algorithm, measured in the
 * same run as the macro scenarios and in a child process of its own (one core, like one gate
 * process). Three ways of verifying the same token:
 *   - node:crypto `verify` (synchronous, OpenSSL directly): the ceiling the issue asks for;
 *   - WebCrypto `subtle.verify` with 64 in flight: what jose 6 calls underneath;
 *   - jose `compactVerify` with 64 in flight: the library call jitgate makes per cache miss.
 *
 *   node bench/macro/crypto-rate.ts '<json job>'   → one JSON line on stdout
 */
import { createPublicKey, verify, webcrypto, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { compactVerify, importJWK, type JWK } from 'jose';

interface Job {
  readonly token: string;
  readonly jwksPath: string;
  readonly alg: string;
  readonly seconds: number;
}

const job = JSON.parse(process.argv[2]!) as Job;
const jwk = (JSON.parse(readFileSync(job.jwksPath, 'utf8')) as { keys: JWK[] }).keys[0]!;
const [h, p, s] = job.token.split('.') as [string, string, string];
const data = Buffer.from(`${h}.${p}`);
const sig = Buffer.from(s, 'base64url');

function nodeVerifier(key: KeyObject): () => boolean {
  switch (job.alg) {
    case 'ES256':
      return () => verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
    case 'ES384':
      return () => verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
    case 'PS256':
      return () => verify('sha256', data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, sig);
    case 'RS256':
      return () => verify('sha256', data, key, sig);
    default:
      return () => verify(null, data, key, sig); // EdDSA
  }
}

function webAlgorithm(): { import: object; verify: object } {
  switch (job.alg) {
    case 'ES256':
      return { import: { name: 'ECDSA', namedCurve: 'P-256' }, verify: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'ES384':
      return { import: { name: 'ECDSA', namedCurve: 'P-384' }, verify: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'PS256':
      return { import: { name: 'RSA-PSS', hash: 'SHA-256' }, verify: { name: 'RSA-PSS', saltLength: 32 } };
    case 'RS256':
      return { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, verify: { name: 'RSASSA-PKCS1-v1_5' } };
    default:
      return { import: { name: 'Ed25519' }, verify: { name: 'Ed25519' } };
  }
}

function timedSync(seconds: number, fn: () => boolean): number {
  if (!fn()) throw new Error('the sample token does not verify');
  for (let i = 0; i < 200; i++) fn(); // warm-up
  let n = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  while (performance.now() < deadline) {
    for (let i = 0; i < 64; i++) fn();
    n += 64;
  }
  return n / ((performance.now() - start) / 1000);
}

async function timedConcurrent(seconds: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  let n = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (performance.now() < deadline) {
        await fn();
        n++;
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

const nodeRate = timedSync(job.seconds, nodeVerifier(createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })));

const wa = webAlgorithm();
const cryptoKey = await webcrypto.subtle.importKey('jwk', jwk as webcrypto.JsonWebKey, wa.import as webcrypto.EcKeyImportParams, false, ['verify']);
const webRate = await timedConcurrent(job.seconds / 2, async () => {
  if (!(await webcrypto.subtle.verify(wa.verify as webcrypto.EcdsaParams, cryptoKey, sig, data))) throw new Error('WebCrypto: bad signature');
});

const joseKey = await importJWK(jwk, job.alg);
const joseRate = await timedConcurrent(job.seconds / 2, () => compactVerify(job.token, joseKey, { algorithms: [job.alg] }));

process.stdout.write(`${JSON.stringify({ alg: job.alg, nodeCryptoSync: nodeRate, webCrypto64: webRate, jose64: joseRate })}\n`);
