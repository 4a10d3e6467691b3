/**
 * `serve` refuses a config whose local files are unusable before its first side effect (src/preflight.ts).
 * A black-box probe saw a serve that failed on a missing listen.tls certificate first raise the fleet's
 * DPoP window in Redis for good (every gate on that prefix then kept replay keys 20 minutes) and append a
 * chain start and a final checkpoint to the audit file, once per attempt of a crash-looping unit.
 * Single process and cluster; plus the Redis files check-config used to pass (an empty password file,
 * a missing CA).
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCheckpointKeys } from '../fixtures/audit-gate.ts';
import { runCli } from '../fixtures/cli.ts';
import { freePort } from '../fixtures/ports.ts';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { startRecordingUpstream, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
let redis: RedisServer;
const dirs: string[] = [];

beforeAll(async () => {
  [up, redis] = await Promise.all([startRecordingUpstream(), startRedis()]);
});
afterAll(async () => {
  await up?.close();
  await redis?.remove();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/**
 * A gate config on the test's Redis (key prefix `prefix`, a fleet DPoP window of 10 minutes) with a chained,
 * signed audit file: what a failed start must leave untouched. `patch` makes the config fail.
 */
async function chainedGateConfig(prefix: string, patch: (c: Record<string, any>) => void): Promise<{ file: string; log: string; revokedFile: string }> {
  const cfg = await writeGateConfig(up.url, (c) => {
    c.redis = { url: redis.url, key_prefix: prefix };
    c.dpop = { replay: 'redis', iat_window: '10m' };
    patch(c);
  });
  dirs.push(cfg.dir);
  const { keyFile } = await writeCheckpointKeys(cfg.dir);
  const log = join(cfg.dir, 'audit.log');
  await writeFile(cfg.file, JSON.stringify({ ...cfg.raw, log: { level: 'info', destination: log, audit_chain: true, audit_checkpoint_key: keyFile } }));
  return { file: cfg.file, log, revokedFile: cfg.revokedFile };
}

/** Nothing of a failed start outside the process: the audit file empty (or absent), the fleet's DPoP window not raised. */
async function expectNothingWritten(log: string, prefix: string): Promise<void> {
  expect(await stat(log).then((s) => s.size).catch(() => 0)).toBe(0);
  expect(await redis.command('ZRANGE', `${prefix}dpop-window`, '0', '-1', 'WITHSCORES')).toEqual([]);
}

describe('serve with a missing listen.tls certificate', () => {
  for (const workers of [1, 2]) {
    it(`workers: ${workers} → exit 1 naming the key; the audit file is not touched and the fleet's DPoP window in Redis is not raised`, async () => {
      const prefix = `preflight${workers}:`;
      const { file, log } = await chainedGateConfig(prefix, (c) => {
        c.workers = workers;
        c.listen.tls = { cert_file: './missing.crt', key_file: './missing.key' };
      });
      const r = await runCli(['serve', '-c', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('listen.tls.cert_file');
      expect(r.stderr).not.toMatch(/\n\s+at /); // a line, not a stack trace
      await expectNothingWritten(log, prefix);
    }, 30_000);
  }
});

describe('serve with a revocation.file that does not parse (a re-probe: readable was not enough)', () => {
  it('check-config and serve refuse it by name; serve writes nothing to the audit file or to Redis first', async () => {
    const prefix = 'preflight-rev:';
    const { file, log, revokedFile } = await chainedGateConfig(prefix, () => undefined);
    await writeFile(revokedFile, '<html><body>502 Bad Gateway</body></html>\n');
    for (const command of ['check-config', 'serve']) {
      const r = await runCli([command, '-c', file]);
      expect([command, r.code]).toEqual([command, 1]);
      expect(r.stderr).toMatch(/revocation\.file: .*revoked\.jsonl: .*no list was ever loaded/);
    }
    await expectNothingWritten(log, prefix);
  }, 30_000);
});

describe('serve with two of its own listeners on one port, or forward-auth on no free path (a re-probe: found only after the side effects)', () => {
  it.each([
    ['ext_authz.http on the admin port', (c: Record<string, any>, port: number) => {
      c.admin = { listen: { host: '127.0.0.1', port } };
      c.ext_authz = { http: { listen: { host: '127.0.0.1', port } } };
    }, /ext_authz\.http\.listen\.port: \d+ is also admin\.listen\.port/],
    ['forward_auth beside an empty path_prefix', (c: Record<string, any>, port: number) => {
      c.ext_authz = { http: { listen: { host: '127.0.0.1', port } }, forward_auth: {} };
    }, /forward_auth/],
  ])('%s: refused by name; nothing written to the audit file or to Redis', async (_what, patch, message) => {
    const prefix = `preflight-listen-${Math.random().toString(36).slice(2, 8)}:`;
    const port = await freePort();
    const { file, log } = await chainedGateConfig(prefix, (c) => patch(c, port));
    const r = await runCli(['serve', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    await expectNothingWritten(log, prefix);
  }, 30_000);
});

describe('Redis files, refused by check-config and by serve alike', () => {
  it.each([
    ['an empty redis.password_file', async (dir: string) => (await writeFile(join(dir, 'pw'), ''), { password_file: join(dir, 'pw') }), /redis\.password_file .*pw: is empty/],
    ['a two-line redis.password_file', async (dir: string) => (await writeFile(join(dir, 'pw2'), 's3cret\n\n'), { password_file: join(dir, 'pw2') }), /redis\.password_file .*pw2: holds more than one line/],
    ['a missing redis.ca_file', async (dir: string) => ({ url: 'rediss://127.0.0.1:6379/0', ca_file: join(dir, 'nope.crt') }), /redis\.ca_file: cannot read .*nope\.crt: ENOENT/],
    ['a redis.ca_file that holds no certificate', async (dir: string) => (await mkdir(join(dir, 'notca')), await writeFile(join(dir, 'notca', 'x.pem'), 'not a pem'), { url: 'rediss://127.0.0.1:6379/0', ca_file: join(dir, 'notca', 'x.pem') }), /redis\.ca_file: .*x\.pem holds no PEM certificate/],
  ])('%s', async (_what, redisPatch, message) => {
    const cfg = await writeGateConfig(up.url);
    dirs.push(cfg.dir);
    await writeFile(cfg.file, JSON.stringify({ ...cfg.raw, redis: { url: redis.url, ...(await redisPatch(cfg.dir)) }, revocation: { redis: true } }));
    for (const command of ['check-config', 'serve']) {
      const r = await runCli([command, '-c', cfg.file]);
      expect([command, r.code]).toEqual([command, 1]);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  }, 30_000);
});
