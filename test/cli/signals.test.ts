/**
 * Issue 21 item 10, on real `jitgate serve` processes:
 * - SIGHUP is a graceful reload (src/reload.ts), never a crash: in-flight requests finish, the
 *   process stays up, a jwks_file's new key counts, and an unusable key file keeps the current set;
 * - with workers, SIGHUP to the primary reloads every worker, and a primary killed outright
 *   (SIGKILL) leaves its workers to drain their in-flight requests instead of dying with them;
 * - (item 5, cluster side) a refused revocation reload in the workers is listed in the primary's
 *   /readyz, which stays ready;
 * - the admin listener cuts a slowloris client at its 10 s headers timeout, not at node's 30 s
 *   connection-check interval.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_HEADERS_TIMEOUT_MS } from '../../src/admin/server.ts';
import { jwksOf, makeKey } from '../fixtures/keys.ts';
import { send, spawnGate, startGateInProcess, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';
import { sign } from '../fixtures/tokens.ts';

let up: RecordingUpstream;
const dirs: string[] = [];
const pids: number[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  for (const pid of pids) if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
  await up?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DRIFT = 'the config file differs from the one this process started with; SIGHUP re-reads key and revocation files only: restart (SIGTERM drains) to apply the config';
const logged = (gate: GateProcess, msg: string) => gate.lines.filter((l) => l.msg === msg);
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The upstream answers after `ms`, so a request is in flight when the signal arrives. */
function slowUpstream(ms: number): void {
  up.respond = (_req, res, rec) => void rec.done.then(() => setTimeout(() => res.writeHead(200).end('slow'), ms));
}

describe('SIGHUP', () => {
  it('reloads the key file without dropping an in-flight request; an unusable file keeps the current keys', async () => {
    const cfg = await writeGateConfig(up.url, (c) => (c.log = { level: 'info', destination: 'stdout' }));
    dirs.push(cfg.dir);
    const gate = await spawnGate(cfg.file);
    try {
      const rotated = await makeKey('ES256', 'a-rotated');
      const fresh = await sign(rotated, { iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300 });
      expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(401);

      slowUpstream(800);
      const seen = up.requests.length;
      const inFlight = send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${await tokenNow(cfg.keys)}` } });
      await up.waitFor(seen + 1);
      writeFileSync(cfg.raw.issuers[0].jwks_file, JSON.stringify(jwksOf(cfg.keys.a, rotated)));
      gate.child.kill('SIGHUP');
      expect((await inFlight).status).toBe(200);
      await until(() => logged(gate, 'reload done').length === 1, 5_000, 'the reload');
      expect(logged(gate, 'reload requested')).toHaveLength(1);
      expect(logged(gate, 'reload done')[0]).toMatchObject({ ok: true });
      expect(logged(gate, 'jwks_file reloaded')[0]).toMatchObject({ issuer: 'https://broker.internal', keys: 2 });
      up.respond = (_req, res) => res.writeHead(200).end('ok');
      expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);

      // A half-written key file: the reload fails loudly and the current keys stay in use.
      writeFileSync(cfg.raw.issuers[0].jwks_file, '{"keys": [');
      gate.child.kill('SIGHUP');
      await until(() => logged(gate, 'reload done').length === 2, 5_000, 'the second reload');
      expect(logged(gate, 'reload done')[1]).toMatchObject({ ok: false });
      expect(logged(gate, 'jwks_file reload failed; keeping the current key set')).toHaveLength(1);
      expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);
      // /readyz says so (still ready: the current keys decide right) until a reload succeeds.
      const degraded = await send(gate.adminUrl, '/readyz');
      expect(degraded.status).toBe(200);
      expect(JSON.parse(degraded.text).problems).toEqual([expect.stringMatching(/^keys for issuer https:\/\/broker\.internal: jwks_file reload failed \(.+\); keeping the current set of 2 keys$/)]);
      writeFileSync(cfg.raw.issuers[0].jwks_file, JSON.stringify(jwksOf(cfg.keys.a, rotated)));
      gate.child.kill('SIGHUP');
      await until(() => logged(gate, 'reload done').length === 3, 5_000, 'the third reload');
      expect(JSON.parse((await send(gate.adminUrl, '/readyz')).text).problems ?? []).toEqual([]);
      expect(logged(gate, DRIFT)).toEqual([]);

      // The config file is not re-read: an edited one is said to differ, not taken for applied (a probe).
      writeFileSync(cfg.file, `${readFileSync(cfg.file, 'utf8')}\n# edited\n`);
      gate.child.kill('SIGHUP');
      await until(() => logged(gate, 'reload done').length === 4 && logged(gate, DRIFT).length === 1, 5_000, 'the fourth reload and its warning');
      expect(logged(gate, DRIFT)[0]).toMatchObject({ level: 'warn', config: cfg.file });
      expect(gate.child.exitCode).toBeNull();
    } finally {
      gate.child.kill('SIGTERM');
    }
    expect(await gate.exited).toEqual({ code: 0, signal: null });
  }, 20_000);
});

describe('workers: 2', () => {
  it('SIGHUP to the primary reloads every worker; a SIGKILLed primary leaves its workers to finish in-flight requests', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.workers = 2;
      c.shutdown = { grace: '5s' };
    });
    dirs.push(cfg.dir);
    const gate = await spawnGate(cfg.file);
    const workers = readFileSync(`/proc/${gate.child.pid}/task/${gate.child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    pids.push(...workers);
    expect(workers).toHaveLength(2);

    gate.child.kill('SIGHUP');
    await until(() => new Set(logged(gate, 'reload done').map((l) => l.pid)).size === 2, 5_000, 'both workers to reload');
    expect(gate.child.exitCode).toBeNull();
    // An edited config file: the primary says it was not applied, once per SIGHUP.
    writeFileSync(cfg.file, `${readFileSync(cfg.file, 'utf8')}\n# edited\n`);
    gate.child.kill('SIGHUP');
    await until(() => logged(gate, DRIFT).length === 1, 5_000, 'the primary\'s warning');
    expect(logged(gate, DRIFT)[0]!.pid).toBe(gate.child.pid);

    // A refused revocation reload in the workers shows in the primary's /readyz, which stays ready (item 5).
    writeFileSync(cfg.revokedFile, '<html><body>502 Bad Gateway</body></html>\n');
    let ready = { status: 0, body: {} as { status?: string; problems?: string[] } };
    for (let i = 0; i < 80 && (ready.body.problems?.length ?? 0) < 2; i++) {
      const r = await send(gate.adminUrl, '/readyz');
      ready = { status: r.status, body: JSON.parse(r.text) as typeof ready.body };
      await sleep(100);
    }
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
    expect(ready.body.problems!.every((p) => /^worker [12]: revocation source file:.* last reload refused \(no_valid_line\)/.test(p))).toBe(true);

    slowUpstream(1000);
    const token = await tokenNow(cfg.keys);
    const seen = up.requests.length;
    const inFlight = [0, 1].map(() => send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } }));
    await up.waitFor(seen + 2); // both are with a worker now
    gate.child.kill('SIGKILL');
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    // Then the workers exit on their own: nothing is left to hand them connections.
    await until(() => workers.every((pid) => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')), 8_000, 'the workers to exit');
    expect(gate.lines.filter((l) => l.msg === 'cluster primary gone; draining this worker')).toHaveLength(2);
    up.respond = (_req, res) => res.writeHead(200).end('ok');
  }, 30_000);
});

describe('admin listener', () => {
  it(`cuts a slowloris client at its ${ADMIN_HEADERS_TIMEOUT_MS / 1000} s headers timeout, not ~30 s later`, async () => {
    const gate = await startGateInProcess(up.url);
    dirs.push(gate.dir);
    try {
      const u = new URL(gate.adminUrl);
      const s = connect(Number(u.port), u.hostname);
      s.on('error', () => undefined);
      const started = Date.now();
      s.write('GET /healthz HTTP/1.1\r\nHost: admin\r\n');
      const drip = setInterval(() => s.write('X-Slow: 1\r\n'), 1000);
      await new Promise((r) => s.once('close', r));
      clearInterval(drip);
      const ms = Date.now() - started;
      console.log(`[admin slowloris] cut after ${ms} ms`);
      expect(ms).toBeGreaterThanOrEqual(ADMIN_HEADERS_TIMEOUT_MS - 100);
      expect(ms).toBeLessThan(ADMIN_HEADERS_TIMEOUT_MS + 2_500);
    } finally {
      await gate.close();
    }
  }, 25_000);
});
