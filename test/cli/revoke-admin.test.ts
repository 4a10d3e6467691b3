/**
 * `jitgate revoke --admin` says what it knows when it gets no 201: a request that never reached the gate
 * revoked nothing; a timeout or a 5xx may come after the gate stored the entry (a cluster waits up to 5 s
 * for its workers, then answers 503 not_enforced with the entry durable). A black-box probe saw
 * "nothing was revoked" printed for an entry the gate had journaled and later enforced.
 */
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../fixtures/cli.ts';
import { tempDir } from '../fixtures/keys.ts';
import { REFUSED_PORT } from '../fixtures/ports.ts';

let dir: string;
let tokenFile: string;
const servers: Server[] = [];

beforeAll(async () => {
  dir = await tempDir('jitgate-revoke-admin-');
  tokenFile = join(dir, 'admin-token');
  await writeFile(tokenFile, 'admin-token-0123456789\n');
});
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await rm(dir, { recursive: true, force: true });
});

async function admin(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const s = createServer(handler);
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const revoke = (url: string) => runCli(['revoke', '--admin', url, '--token-file', tokenFile, '--jti', 'j-1', '--timeout', '1s']);

describe('jitgate revoke --admin without a 201', () => {
  it('no answer within --timeout: exit 1, "not confirmed", never "nothing was revoked"', async () => {
    const r = await revoke(await admin(() => {}));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no answer within --timeout .*not confirmed — the gate may have stored it, run the command again/);
    expect(r.stderr).not.toContain('nothing was revoked');
  });

  it('503 not_enforced: exit 1, "not confirmed"', async () => {
    const url = await admin((_req, res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"unavailable","reason":"not_enforced","message":"the entries are durable"}'));
    const r = await revoke(url);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/answered 503 \(not_enforced: the entries are durable\); not confirmed/);
  });

  it('a token file that is not one line of visible ASCII: exit 1 naming the file, nothing sent, and the secret never printed (a review)', async () => {
    let asked = 0;
    const url = await admin((_req, res) => (asked++, res.writeHead(201).end('{}')));
    for (const [name, content] of [['two-lines', 'S3cretAdminTok\nsecondline\n'], ['spaced', 'S3cret AdminTok'], ['accented', 'S3cretAdminTok\u00e9'], ['empty', '\n'], ['huge', `S3cret${'A'.repeat(5000)}`]] as const) {
      const file = join(dir, name);
      await writeFile(file, content);
      const r = await runCli(['revoke', '--admin', url, '--token-file', file, '--jti', 'j-1']);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toContain(`--token-file ${file}: `);
      expect(r.stderr, name).toMatch(/nothing was sent/);
      expect(`${r.stdout}${r.stderr}`, name).not.toContain('S3cret');
    }
    expect(asked).toBe(0);
  });

  it('a switch given twice means what it says once: --help --help prints the usage, exit 0 (a review: it was refused)', async () => {
    const r = await runCli(['revoke', '--help', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: jitgate revoke/);
    expect(r.stderr).toBe('');
  });

  it('--jti given twice: exit 2 and nothing sent (parseArgs kept only the last: one of two tokens revoked)', async () => {
    let asked = 0;
    const url = await admin((_req, res) => (asked++, res.writeHead(201).end('{}')));
    const r = await runCli(['revoke', '--admin', url, '--token-file', tokenFile, '--jti', 'first', '--jti', 'second']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--jti given more than once');
    expect(asked).toBe(0);
  });

  it('401 and a refused connection: exit 1, not revoked', async () => {
    const refused = await revoke(await admin((_req, res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized","reason":"admin_token_required"}')));
    expect([refused.code, /answered 401 \(admin_token_required: \); not revoked/.test(refused.stderr)]).toEqual([1, true]);
    const down = await revoke(`http://127.0.0.1:${REFUSED_PORT}`);
    expect([down.code, /no answer \(.*\); nothing was revoked/.test(down.stderr)]).toEqual([1, true]);
  });
});

describe('jitgate revoke, epoch flags', () => {
  it('refuses --exp and --before beyond a safe integer: 400 digits read as Infinity, stored and never enforced (a review)', async () => {
    const huge = '9'.repeat(400);
    for (const args of [['--jti', 'j-1', '--exp', huge], ['--sub', 's', '--before', huge], ['--jti', 'j-1', '--exp', '9007199254740993']]) {
      const r = await runCli(['revoke', '--redis', `redis://127.0.0.1:${REFUSED_PORT}/0`, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/expected epoch seconds \(an integer up to 2\^53 − 1\)/);
    }
  });

  it('refuses an --exp that is not in the future (--exp 300 meant as a duration is 1970): exit 2, nothing written', async () => {
    for (const exp of ['300', '1000', String(Math.floor(Date.now() / 1000) - 1)]) {
      const r = await runCli(['revoke', '--redis', `redis://127.0.0.1:${REFUSED_PORT}/0`, '--jti', 'j-past', '--exp', exp]);
      expect(r.code, exp).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`--exp: ${exp} is not in the future \\(now is \\d+\\): the entry would be dropped at once`));
    }
  });

  it('refuses ids no token can carry and a --timeout a timer cannot wait, before writing anything (a re-probe: --redis wrote them, exit 0)', async () => {
    for (const args of [['--jti', 'abc\t'], ['--jti', ' lead'], ['--sub', 'A'.repeat(1500)], ['--txn', 'caf\u00e9']]) {
      const r = await runCli(['revoke', '--redis', `redis://127.0.0.1:${REFUSED_PORT}/0`, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/can never match a token/);
    }
    for (const timeout of ['25d', '0s', '50ms']) {
      const t = await runCli(['revoke', '--redis', `redis://127.0.0.1:${REFUSED_PORT}/0`, '--jti', 'j', '--timeout', timeout]);
      expect(t.code).toBe(2);
      expect(t.stderr).toMatch(/--timeout: .*100ms to 24d/);
    }
  });
});
