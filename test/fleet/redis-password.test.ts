/**
 * Redis credentials (docs/fleet.md "Configuration") against a real redis-server with an ACL user:
 * the user comes from redis.url, the password from redis.password_file when it is set (it wins
 * over one in the URL), and a refusal names the key the password came from. `jitgate revoke
 * --password-file` behaves the same.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../fixtures/cli.ts';
import type { RedisServer } from '../fixtures/redis.ts';
import { startRedisGates, type RedisGates } from '../fixtures/redis-gates.ts';
import { ISSUER_A } from '../fixtures/tokens.ts';

const USER_PASSWORD = 'user-password-0123456789';
let fleet: RedisGates;
let redis: RedisServer;
let dir: string;
let rightFile: string;
let wrongFile: string;

beforeAll(async () => {
  // The default user needs a password too, so nothing passes unauthenticated.
  fleet = await startRedisGates(['--requirepass', 'default-password-0123456789']);
  ({ redis, dir } = fleet);
  rightFile = join(dir, 'right');
  wrongFile = join(dir, 'wrong');
  await writeFile(rightFile, `${USER_PASSWORD}\n`);
  await writeFile(wrongFile, 'not-the-password\n');
});
afterAll(async () => {
  await fleet?.remove();
});
afterEach(async () => {
  await fleet.runDeferred();
});

/** The fixture's one-shot command cannot AUTH first; ACL SETUSER goes through a client that does. */
async function setUser(): Promise<void> {
  const { createClient } = await import('redis');
  const c = createClient({ url: redis.url, password: 'default-password-0123456789', socket: { reconnectStrategy: false } });
  c.on('error', () => {});
  await c.connect();
  try {
    expect(await c.sendCommand(['ACL', 'SETUSER', 'jitgate', 'reset', 'on', `>${USER_PASSWORD}`, '~*', '&*', '+@all'])).toBe('OK');
  } finally {
    c.destroy();
  }
}

async function startGate(url: string, passwordFile?: string): Promise<void> {
  const built = await fleet.startGate({
    issuers: [{ issuer: ISSUER_A, jwks_file: fleet.jwksFile }],
    revocation: { redis: true },
    redis: { url, connect_timeout: '2s', ...(passwordFile ? { password_file: passwordFile } : {}) },
  });
  expect(built.gate.readiness().ready).toBe(true);
}

const at = (cred: string): string => `redis://${cred}@127.0.0.1:${redis.port}/0`;

describe('redis.password_file with an ACL user', () => {
  beforeAll(setUser);

  it('user in the URL, password in the file: the gate starts', async () => {
    await startGate(at('jitgate'), rightFile);
  });

  it('the file wins over a password in the URL', async () => {
    await startGate(at('jitgate:wrong-in-url'), rightFile);
  });

  it('a wrong password in the file is blamed on redis.password_file, even with a right one in the URL', async () => {
    await expect(startGate(at(`jitgate:${USER_PASSWORD}`), wrongFile)).rejects.toThrow(/^redis\.password_file: Redis at redis:\/\/jitgate:\*\*\*@.* refused the credentials \(user "jitgate"\) \(WRONGPASS/);
  });

  it('a wrong password in the URL without a file is blamed on redis.url', async () => {
    await expect(startGate(at('jitgate:wrong-in-url'))).rejects.toThrow(/^redis\.url \(user:password\): Redis at .* refused the credentials \(user "jitgate"\) \(WRONGPASS/);
  });

  it('a database Redis does not have (/99 of 16) stops startup naming redis.url; revoke --redis says so too, not "unreachable"', async () => {
    const url = `redis://jitgate:${USER_PASSWORD}@127.0.0.1:${redis.port}/99`;
    await expect(startGate(url)).rejects.toThrow(/^redis\.url redis:\/\/jitgate:\*\*\*@127\.0\.0\.1:\d+\/99: Redis has no database 99 \(ERR DB index is out of range\)/);
    const r = await runCli(['revoke', '--redis', url, '--jti', 'db-99', '--timeout', '3s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Redis has no database 99/);
    expect(r.stderr).not.toMatch(/unreachable/);
  });

  it('jitgate revoke --password-file: the same rules', async () => {
    const ok = await runCli(['revoke', '--redis', at('jitgate'), '--password-file', rightFile, '--jti', 'pw-cli', '--timeout', '3s']);
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    expect(ok.stdout).toMatch(/^revoked \{"jti":"pw-cli"\}/);
    const over = await runCli(['revoke', '--redis', at('jitgate:wrong-in-url'), '--password-file', rightFile, '--jti', 'pw-cli-2', '--timeout', '3s']);
    expect(over.code).toBe(0);
    const wrong = await runCli(['revoke', '--redis', at(`jitgate:${USER_PASSWORD}`), '--password-file', wrongFile, '--jti', 'pw-cli-3', '--timeout', '3s']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^jitgate revoke: --password-file: Redis at .* refused the credentials/);
    const missing = await runCli(['revoke', '--redis', at('jitgate'), '--password-file', join(dir, 'nope'), '--jti', 'x']);
    expect([missing.code, missing.stderr]).toEqual([1, `jitgate revoke: --password-file ${join(dir, 'nope')}: cannot read it (ENOENT)\n`]);
  });
});
