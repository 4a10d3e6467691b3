/**
 * A crash loses nothing acknowledged (SPEC §5): a real gate process takes revocations through the
 * admin API, is killed with SIGKILL the moment a 2xx arrives (other POSTs still in flight), and a
 * restarted process enforces every entry that was acknowledged.
 */
import { request } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jwksOf, makeKey, tempDir, writeJson, type TestKey } from '../fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../fixtures/tokens.ts';
import { decide, startGateChild, stopGateChildren } from '../fixtures/gate-child.ts';

const TOKEN = 'crash-test-admin-token-0123456789';
let key: TestKey;

beforeAll(async () => {
  key = await makeKey('ES256', 'k1');
});
afterEach(stopGateChildren);

async function writeConfig(): Promise<string> {
  const dir = await tempDir('jitgate-crash-');
  const jwks = await writeJson(dir, 'jwks.json', jwksOf(key));
  await writeFile(join(dir, 'admin-token'), `${TOKEN}\n`);
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: 'http://127.0.0.1:9' },
    service: { audience: AUDIENCE, location: LOCATION },
    issuers: [{ issuer: ISSUER_A, jwks_file: jwks, algorithms: ['ES256'] }],
    revocation: { journal: join(dir, 'revocations.journal') },
    admin: { token_file: join(dir, 'admin-token') },
  };
  const file = join(dir, 'jitgate.yaml');
  await writeFile(file, JSON.stringify(config, null, 2)); // JSON is YAML
  return file;
}

function http(port: number, method: string, path: string, headers: Record<string, string>, body?: string, onHead?: (status: number) => void) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      onHead?.(res.statusCode!);
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const now = () => Math.floor(Date.now() / 1000);
const tokenFor = (jti: string) => sign(key, { jti, iat: now(), exp: now() + 600 });


describe('journal durability', () => {
  it('enforces after a restart every entry acknowledged before a SIGKILL', async () => {
    const config = await writeConfig();
    const first = await startGateChild(config);
    const jtis = Array.from({ length: 40 }, (_, i) => `crash-${i}`);
    const tokens = new Map(await Promise.all(jtis.map(async (j) => [j, await tokenFor(j)] as const)));
    expect(await decide(first.port, tokens.get('crash-0')!)).toBe('allow:granted');

    const exited = new Promise<NodeJS.Signals | null>((r) => first.child.once('exit', (_c, s) => r(s)));
    const acked: string[] = [];
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    // Four clients posting one entry after another; the process dies the instant the 10th
    // acknowledgement arrives, with other POSTs in flight.
    const queue = [...jtis];
    let killed = false;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!killed && queue.length > 0) {
          const jti = queue.shift()!;
          await http(first.port, 'POST', '/revocations', headers, JSON.stringify({ jti }), (status) => {
            if (status !== 201 || killed) return;
            acked.push(jti);
            if (acked.length === 10) {
              killed = true;
              first.child.kill('SIGKILL');
            }
          }).catch(() => {});
        }
      }),
    );
    expect(await exited).toBe('SIGKILL');
    expect(acked.length).toBeGreaterThanOrEqual(10);

    const second = await startGateChild(config);
    const after = await Promise.all(acked.map(async (j) => [j, await decide(second.port, tokens.get(j)!)] as const));
    console.log(`[journal crash] ${acked.length} of ${jtis.length} POSTs acknowledged before SIGKILL; after restart: ${after.filter(([, d]) => d === 'deny:revoked').length} enforced`);
    for (const [jti, d] of after) expect({ jti, d }).toEqual({ jti, d: 'deny:revoked' });
    expect(await decide(second.port, await tokenFor('never-posted'))).toBe('allow:granted');
    second.child.kill('SIGKILL');
  });

  it('a single entry posted, SIGKILL right after the 2xx, is enforced after the restart', async () => {
    const config = await writeConfig();
    const first = await startGateChild(config);
    const token = await tokenFor('one');
    const exited = new Promise<void>((r) => first.child.once('exit', () => r()));
    await http(first.port, 'POST', '/revocations', { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, '{"jti":"one"}', (status) => {
      expect(status).toBe(201);
      first.child.kill('SIGKILL');
    }).catch(() => {});
    await exited;
    const second = await startGateChild(config);
    expect(await decide(second.port, token)).toBe('deny:revoked');
    second.child.kill('SIGKILL');
  });
});
