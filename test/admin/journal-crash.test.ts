/**
 * A crash loses nothing acknowledged (SPEC §5): a real gate process takes revocations through the
 * admin API, is killed with SIGKILL the moment a 2xx arrives (other POSTs still in flight), and a
 * restarted process enforces every entry that was acknowledged.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jwksOf, makeKey, tempDir, writeJson, type TestKey } from '../fixtures/keys.ts';
import { AUDIENCE, ISSUER_A, LOCATION, sign } from '../fixtures/tokens.ts';

const CHILD = fileURLToPath(new URL('../fixtures/revocation-gate-child.ts', import.meta.url));
const TOKEN = 'crash-test-admin-token-0123456789';
let key: TestKey;
const children: ChildProcess[] = [];

beforeAll(async () => {
  key = await makeKey('ES256', 'k1');
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

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

function startChild(config: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [CHILD, config], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before READY: ${err}`)));
  });
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

async function decision(port: number, token: string): Promise<string> {
  const r = await http(port, 'GET', '/decide', { authorization: `Bearer ${token}` });
  const d = JSON.parse(r.body) as { kind: string; reason: string };
  return `${d.kind}:${d.reason}`;
}

describe('journal durability', () => {
  it('enforces after a restart every entry acknowledged before a SIGKILL', async () => {
    const config = await writeConfig();
    const first = await startChild(config);
    const jtis = Array.from({ length: 40 }, (_, i) => `crash-${i}`);
    const tokens = new Map(await Promise.all(jtis.map(async (j) => [j, await tokenFor(j)] as const)));
    expect(await decision(first.port, tokens.get('crash-0')!)).toBe('allow:granted');

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

    const second = await startChild(config);
    const after = await Promise.all(acked.map(async (j) => [j, await decision(second.port, tokens.get(j)!)] as const));
    console.log(`[journal crash] ${acked.length} of ${jtis.length} POSTs acknowledged before SIGKILL; after restart: ${after.filter(([, d]) => d === 'deny:revoked').length} enforced`);
    for (const [jti, d] of after) expect({ jti, d }).toEqual({ jti, d: 'deny:revoked' });
    expect(await decision(second.port, await tokenFor('never-posted'))).toBe('allow:granted');
    second.child.kill('SIGKILL');
  });

  it('a single entry posted, SIGKILL right after the 2xx, is enforced after the restart', async () => {
    const config = await writeConfig();
    const first = await startChild(config);
    const token = await tokenFor('one');
    const exited = new Promise<void>((r) => first.child.once('exit', () => r()));
    await http(first.port, 'POST', '/revocations', { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, '{"jti":"one"}', (status) => {
      expect(status).toBe(201);
      first.child.kill('SIGKILL');
    }).catch(() => {});
    await exited;
    const second = await startChild(config);
    expect(await decision(second.port, token)).toBe('deny:revoked');
    second.child.kill('SIGKILL');
  });
});
