/**
 * `rediss://` (SPEC §9): a real redis-server with TLS on (certificates made here with openssl).
 * With `redis.ca_file` the gate connects, loads and follows; without it the start-up error says the
 * TLS handshake failed and names redis.ca_file.
 */
import { execFileSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestGate, type BuiltGate } from '../fixtures/built-gate.ts';
import { bearer, input } from '../fixtures/gate.ts';
import { jwksOf, makeKey, tempDir, writeJson, type TestKey } from '../fixtures/keys.ts';
import { freePort } from '../fixtures/ports.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { ISSUER_A, sign } from '../fixtures/tokens.ts';

let dir: string;
let redis: RedisServer;
let tlsUrl: string;
let key: TestKey;
let jwksFile: string;
const gates: BuiltGate[] = [];

beforeAll(async () => {
  dir = await tempDir('jitgate-redis-tls-');
  const f = (n: string): string => join(dir, n);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=jitgate test CA');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('redis.key'), '-out', f('redis.csr'), '-subj', '/CN=localhost');
  await writeFile(f('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509', '-req', '-in', f('redis.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('redis.pem'), '-days', '1', '-extfile', f('ext'));
  const tlsPort = await freePort();
  redis = await startRedis(['--port', '0', '--tls-port', String(tlsPort), '--tls-cert-file', f('redis.pem'), '--tls-key-file', f('redis.key'), '--tls-ca-cert-file', f('ca.pem'), '--tls-auth-clients', 'no']);
  tlsUrl = `rediss://127.0.0.1:${tlsPort}/0`;
  key = await makeKey('ES256', 'k1');
  jwksFile = await writeJson(dir, 'jwks.json', jwksOf(key));
});
afterAll(async () => {
  for (const g of gates) g.gate.stop();
  await Promise.all(gates.map((g) => rm(g.dir, { recursive: true, force: true })));
  await redis?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function build(redisBlock: Record<string, unknown>): Promise<BuiltGate> {
  const g = await buildTestGate({ issuers: [{ issuer: ISSUER_A, jwks_file: jwksFile }], revocation: { redis: true }, redis: { connect_timeout: '3s', ...redisBlock } } as never, undefined, false);
  gates.push(g); // stopped and its dir removed in afterAll, started or not
  await g.gate.start();
  return g;
}

describe('rediss://', () => {
  it('with redis.ca_file: connects, writes and follows over TLS', async () => {
    const g = await build({ url: tlsUrl, ca_file: join(dir, 'ca.pem') });
    expect(g.gate.readiness().ready).toBe(true);
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(key, { jti: 'over-tls', iat: now, exp: now + 300 });
    expect((await g.gate.decide(input('GET', '/orders/42', bearer(token)))).reason).toBe('granted');
    await g.gate.fleet!.writer.write([{ kind: 'jti', jti: 'over-tls', exp: undefined }]);
    const started = Date.now();
    while ((await g.gate.decide(input('GET', '/orders/42', bearer(token)))).reason !== 'revoked') {
      if (Date.now() - started > 3000) throw new Error('not followed over TLS within 3 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('without the CA: the start-up error names redis.ca_file', async () => {
    await expect(build({ url: tlsUrl })).rejects.toThrow(/^redis\.url rediss:\/\/127\.0\.0\.1:\d+\/0: TLS handshake failed \(.*\); set redis\.ca_file/);
  });
});
