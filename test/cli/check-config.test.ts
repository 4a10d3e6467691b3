/**
 * `jitgate check-config -c FILE` as an operator runs it: exit 0 and a one-line summary for a good
 * file; exit 1 with `key.path: problem` lines (no stack trace) for a bad one; 2 for usage errors.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../fixtures/cli.ts';
import { writeGateConfig } from '../fixtures/servers.ts';

const run = (args: string[], env?: Record<string, string>): Promise<CliResult> => runCli(['check-config', ...args], { env });

const config = (patch: (c: Record<string, any>) => void = () => {}) => writeGateConfig('http://127.0.0.1:8081', patch);

describe('jitgate check-config', () => {
  it('case=valid file → exit 0, "config OK: <summary>"', async () => {
    const { file } = await config();
    const r = await run(['-c', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^config OK: proxy 127\.0\.0\.1:0 → http:\/\/127\.0\.0\.1:8081; 2 issuers \(2 local key files, 0 jwks_uri\); 1 public route; revocation: file; admin 127\.0\.0\.1:0; workers 1\n$/);
  });

  it('case=JITGATE_CONFIG is the default for -c', async () => {
    const { file } = await config();
    const r = await run([], { JITGATE_CONFIG: file });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^config OK: /);
  });

  it('case=bad values → exit 1, one line per key, no stack trace', async () => {
    const { file } = await config((c) => {
      c.issuers[0].max_ttl = 'soon';
      c.upstream.connections = -1;
      c.listen.port = 'eighty';
      c.workers = '2'; // a probe got only "workers: Invalid input"
    });
    const r = await run(['-c', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`invalid config ${file}:`);
    expect(r.stderr).toContain('issuers[0].max_ttl: expected a duration like "15m", got "soon"');
    expect(r.stderr).toMatch(/upstream\.connections: /);
    expect(r.stderr).toContain('listen.port: expected a port number, got string "eighty"');
    expect(r.stderr).toContain('workers: expected a number of processes (1–256) or "auto", got string "2"');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('case=unknown key and invalid YAML', async () => {
    const { file } = await config((c) => {
      c.upstreams = c.upstream;
    });
    const r = await run(['-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('upstreams: unknown key');
    const bad = join(file, '..', 'bad.yaml');
    await writeFile(bad, 'listen: [\n');
    const y = await run(['-c', bad]);
    expect(y.code).toBe(1);
    expect(y.stderr).toMatch(/not valid YAML \(line \d+\)/);
  });

  it('case=compile-time problems: bad public pattern, unreadable key file, upstream URL with a path', async () => {
    const { file } = await config((c) => {
      c.public = [{ methods: ['GET'], path: '/a/**/b' }];
      c.issuers[1].jwks_file = './missing-jwks.json';
      c.upstream.url = 'http://127.0.0.1:8081/api';
    });
    const r = await run(['-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('public[0].path: "/a/**/b" is not a valid path pattern');
    expect(r.stderr).toMatch(/issuers\[1\]\.jwks_file: .*missing-jwks\.json/);
    expect(r.stderr).toContain('upstream.url: expected an origin such as http://backend:8080 without a path');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('case=what serve refuses before it binds (ext_authz, files it appends to) → check-config refuses too', async () => {
    // Each of these once passed check-config and failed serve (a black-box probe of SPEC §8).
    const { file, dir } = await config((c) => {
      c.ext_authz = { http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: 'authz' }, forward_auth: { trusted_proxies: ['notanip', '10.0.0.0/33'] } };
      c.revocation.file = '.';
      c.revocation.journal = './no-such-dir/revocations.journal';
      c.log = { level: 'info', destination: './jitgate.yaml/gate.log' };
    });
    const r = await run(['-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ext_authz.http.path_prefix: "authz" must be empty or start with "/"');
    expect(r.stderr).toContain('ext_authz.forward_auth.trusted_proxies[0]: "notanip" is not an IP address or CIDR');
    expect(r.stderr).toContain('ext_authz.forward_auth.trusted_proxies[1]: "10.0.0.0/33" has an invalid prefix length');
    // Paths are the config file's, resolved against its directory.
    expect(r.stderr).toContain(`revocation.file: ${dir} is not a regular file`);
    expect(r.stderr).toContain(`revocation.journal: ${dir}/no-such-dir/revocations.journal: the directory ${dir}/no-such-dir does not exist`);
    expect(r.stderr).toContain(`log.destination: ${dir}/jitgate.yaml/gate.log: ${dir}/jitgate.yaml is not a directory, so the file cannot be created`);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    // serve stops at the log destination, before any logger opens it: one line, no stack trace.
    const served = await runCli(['serve', '-c', file]);
    expect(served.code).toBe(1);
    expect(served.stderr).toBe(`jitgate serve: log.destination: ${dir}/jitgate.yaml/gate.log: ${dir}/jitgate.yaml is not a directory, so the file cannot be created\n`);
    const asDir = await config((c) => (c.log = { level: 'info', destination: '.' }));
    const dirServed = await runCli(['serve', '-c', asDir.file]);
    expect([dirServed.code, dirServed.stderr]).toEqual([1, `jitgate serve: log.destination: ${asDir.dir} is a directory; expected a file to append to\n`]);
  });

  // One CLI start or two per case: a loaded machine takes several seconds for each (four in one 30 s case timed out).
  it('case=log.destination a device or a named pipe → /dev/null and a pipe pass (a log shipper, /dev/stdout)', async () => {
    const devNull = await config((c) => (c.log = { level: 'info', destination: '/dev/null' }));
    const ok = await run(['-c', devNull.file]);
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    const fifo = join(devNull.dir, 'shipper.fifo');
    execFileSync('mkfifo', [fifo]);
    const piped = await config((c) => (c.log = { level: 'info', destination: fifo }));
    try {
      expect((await run(['-c', piped.file])).code).toBe(0);
    } finally {
      await rm(devNull.dir, { recursive: true, force: true });
      await rm(piped.dir, { recursive: true, force: true });
    }
  });

  it('case=log.destination a socket → refused by name, by check-config and by serve', async () => {
    // A socket cannot be opened as a file: one line naming the key, from check-config and from serve.
    const holder = await config();
    const sock = join(holder.dir, 'log.sock');
    const server = createServer().listen(sock);
    await once(server, 'listening');
    const bad = await config((c) => (c.log = { level: 'info', destination: sock }));
    try {
      const message = `log.destination: ${sock} is not a regular file, a pipe or a character device; expected a file to append to`;
      const r = await run(['-c', bad.file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(message);
      const served = await runCli(['serve', '-c', bad.file]);
      expect([served.code, served.stderr]).toEqual([1, `jitgate serve: ${message}\n`]);
    } finally {
      server.close();
      await rm(bad.dir, { recursive: true, force: true });
      await rm(holder.dir, { recursive: true, force: true });
    }
  });

  it('case=two listeners on one port → exit 1 naming both keys (serve would fail with "address in use"); port 0 and distinct hosts pass', async () => {
    const clash = await config((c) => {
      c.listen = { host: '0.0.0.0', port: 49_990 };
      c.admin = { ...c.admin, listen: { host: '127.0.0.1', port: 49_990 } };
    });
    const r = await run(['-c', clash.file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('admin.listen.port: 49990 is also listen.port; each listener needs its own port');
    const apart = await config((c) => {
      c.listen = { host: '127.0.0.1', port: 49_990 };
      c.admin = { ...c.admin, listen: { host: '127.0.0.2', port: 49_990 } };
    });
    expect((await run(['-c', apart.file])).code).toBe(0);
    await Promise.all([clash.dir, apart.dir].map((d) => rm(d, { recursive: true, force: true })));
  });

  it.each([
    [{ forward_auth: { path: '/forward-auth' } }, 'ext_authz.forward_auth: is served on the ext_authz.http listener'],
    [{ http: { listen: { host: '127.0.0.1', port: 0 }, path_prefix: '/authz' }, forward_auth: { path: '/authz/fa' } }, 'ext_authz.forward_auth.path: "/authz/fa" lies under ext_authz.http.path_prefix "/authz", so an Envoy check for that path would be taken for forward-auth; move the forward-auth path outside "/authz"'],
    [{ http: { listen: { host: '127.0.0.1', port: 0 } }, forward_auth: {} }, 'lies under ext_authz.http.path_prefix ""'],
  ])('case=forward-auth placement %j → exit 1 naming the key', async (ext, message) => {
    const { file } = await config((c) => (c.ext_authz = ext));
    const r = await run(['-c', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
  });

  it('case=workers > 1 with the revocation API and its journal → accepted (the primary owns them)', async () => {
    const { file, dir } = await config((c) => {
      c.workers = 2;
      c.admin.token_file = './admin-token';
      c.revocation.journal = './revocations.journal';
    });
    await writeFile(join(dir, 'admin-token'), 'a-long-enough-admin-token-value\n');
    const r = await run(['-c', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/workers 2\n$/);
    expect(r.stdout).toContain('(revocation API on)');
  });

  it('case=an admin token without a journal or Redis → accepted, and the summary says POST will answer 503 (a new user read "revocation API on")', async () => {
    const { file, dir } = await config((c) => {
      c.admin.token_file = './admin-token';
    });
    await writeFile(join(dir, 'admin-token'), 'a-long-enough-admin-token-value\n');
    const r = await run(['-c', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('(revocation API on, but POST answers 503: set revocation.journal or revocation.redis to accept entries)');
  });

  it.each([
    ['missing', undefined, /log\.audit_checkpoint_key: cannot read .*missing\.jwk\.json: ENOENT/],
    ['an ES256 key', 'ec', /log\.audit_checkpoint_key: .*ec\.jwk\.json is not a private Ed25519 JWK/],
    ['an Ed25519 key', 'ed25519', undefined],
  ] as const)('case=log.audit_checkpoint_key %s → checked as serve loads it', async (_name, kind, problem) => {
    const name = kind === undefined ? 'missing' : kind;
    const { file, dir } = await config((c) => {
      c.log = { level: 'info', destination: 'stderr', audit_chain: true, audit_checkpoint_key: `./${name}.jwk.json` };
    });
    try {
      if (kind !== undefined) {
        const { privateKey } = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
        await writeFile(join(dir, `${name}.jwk.json`), JSON.stringify(privateKey.export({ format: 'jwk' })));
      }
      const r = await run(['-c', file]);
      if (problem === undefined) {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      } else {
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(problem);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('case=revocation.redis → the summary names redis (alone, and beside the journal)', async () => {
    const alone = await config((c) => {
      c.revocation = { redis: true };
      c.redis = { url: 'redis://127.0.0.1:1/0' };
    });
    const a = await run(['-c', alone.file]);
    expect([a.code, a.stderr]).toEqual([0, '']);
    expect(a.stdout).toContain('; revocation: redis; ');
    const both = await config((c) => {
      c.revocation = { redis: true, journal: './revocations.journal' };
      c.redis = { url: 'redis://127.0.0.1:1/0' };
    });
    const b = await run(['-c', both.file]);
    await Promise.all([alone.dir, both.dir].map((d) => rm(d, { recursive: true, force: true })));
    expect([b.code, b.stderr]).toEqual([0, '']);
    expect(b.stdout).toContain('; revocation: journal + redis; ');
  });

  // One process per test: each start of the CLI is seconds of CPU on a loaded 2-core box.
  it('case=usage: no file → exit 2', async () => {
    const r = await run([], { JITGATE_CONFIG: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('missing -c FILE (or JITGATE_CONFIG)');
  });

  it('case=usage: --help → exit 0', async () => {
    const h = await run(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Usage: jitgate check-config -c FILE');
  });

  it('case=usage: a file that does not exist → exit 1 naming it', async () => {
    const missing = await run(['-c', '/nonexistent/jitgate.yaml']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('invalid config /nonexistent/jitgate.yaml:\n  cannot read the file: ENOENT');
  });
});
