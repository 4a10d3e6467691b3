/**
 * Where a cache miss's signature check spends CPU: on the event loop thread (which also serves
 * every HTTP request) or in libuv's thread pool. One ES256 token, verified back to back:
 *   - jose `compactVerify`, 50 in flight (what jitgate calls on a miss),
 *   - WebCrypto `subtle.verify`, 50 in flight (what jose calls),
 *   - node:crypto `verify` with a callback, 50 in flight (the same job, without WebCrypto's JS layer),
 *   - node:crypto `verify`, synchronous (all of it on the event loop),
 *   - jitgate's own miss path, verifyToken (parse once + node:crypto + claims + grants), in its
 *     `sync` and `pool` forms (src/core/verify-mode.ts), on a full grant token.
 * Columns: verifies/s, event-loop-thread CPU per verify, whole-process CPU per verify.
 *
 * Run: node bench/micro/verify-cost.ts [--seconds 2] [--rounds 2]
 * The thread pool size is the process's own (UV_THREADPOOL_SIZE, libuv default 4); `jitgate serve`
 * sizes it from the cores (src/cli/thread-pool.ts), so compare with UV_THREADPOOL_SIZE=1 on 2 cores.
 */
import { generateKeyPairSync, verify, webcrypto } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CompactSign, compactVerify } from 'jose';
import { verifyToken } from '../../src/core/token.ts';
import { importJwks } from '../../src/keys/key-set.ts';
import { makeKey } from '../../test/fixtures/keys.ts';
import { gatePolicy, issuerPolicy } from '../../test/fixtures/policy.ts';
import { ISSUER_A, NOW, sign } from '../../test/fixtures/tokens.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, rounds: { type: 'string', default: '2' } } });
const seconds = Number(values.seconds);

const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const payload = new TextEncoder().encode(JSON.stringify({ iss: 'https://broker.internal', sub: 'spiffe://prod/ci', pad: 'x'.repeat(400) }));
const token = await new CompactSign(payload).setProtectedHeader({ alg: 'ES256', typ: 'jit+jwt' }).sign(privateKey);
const dot = token.lastIndexOf('.');
const data = Buffer.from(token.slice(0, dot));
const signature = Buffer.from(token.slice(dot + 1), 'base64url');
const cryptoKey = await webcrypto.subtle.importKey('jwk', publicKey.export({ format: 'jwk' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
const p1363 = { key: publicKey, dsaEncoding: 'ieee-p1363' } as const;

// A gate policy with one ES256 issuer key, and a full grant token for it.
const gateKey = await makeKey('ES256', 'bench');
const { set } = await importJwks({ keys: [gateKey.publicJwk] }, ['ES256']);
const policy = gatePolicy([issuerPolicy(ISSUER_A, set, ['ES256'], 'jit+jwt')]);
const grantToken = await sign(gateKey);
const ours = (mode: 'sync' | 'pool') => async (): Promise<boolean> => typeof (await verifyToken(grantToken, policy, NOW * 1000, { mode, badSignatures: undefined })) === 'object';

async function measure(name: string, inFlight: number, once: () => unknown): Promise<void> {
  if ((await once()) === false) throw new Error(`${name}: the sample token does not verify`);
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const thread0 = process.threadCpuUsage();
  const all0 = process.cpuUsage();
  const lane = async (): Promise<void> => {
    while (performance.now() < end) {
      await once();
      n++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const thread = process.threadCpuUsage(thread0);
  const all = process.cpuUsage(all0);
  const elapsed = (performance.now() - start) / 1000;
  const per = (u: NodeJS.CpuUsage): string => ((u.user + u.system) / n).toFixed(1).padStart(7);
  console.log(`| ${name.padEnd(38)} | ${Math.round(n / elapsed).toLocaleString('en-US').padStart(8)} | ${per(thread)} µs | ${per(all)} µs |`);
}

console.log(`node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(libuv default 4)'}, ${seconds}s per case\n`);
console.log('| ES256 verify                           | per s    | event loop | whole process |');
console.log('|----------------------------------------|---------:|-----------:|--------------:|');
for (let r = 0; r < Number(values.rounds); r++) {
  await measure('jose compactVerify, 50 in flight', 50, () => compactVerify(token, cryptoKey, { algorithms: ['ES256'] }));
  await measure('subtle.verify, 50 in flight', 50, () => webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, cryptoKey, signature, data));
  await measure('crypto.verify callback, 50 in flight', 50, () => new Promise((resolve, reject) => verify('sha256', data, p1363, signature, (e, ok) => (e ? reject(e) : resolve(ok)))));
  await measure('crypto.verify sync', 1, () => verify('sha256', data, p1363, signature));
  await measure('jitgate verifyToken, sync', 1, ours('sync'));
  await measure('jitgate verifyToken, pool, 50 in flight', 50, ours('pool'));
  await measure('jitgate verifyToken, pool, 1 in flight', 1, ours('pool'));
}
