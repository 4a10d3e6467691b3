/**
 * `jitgate serve` as a process: the startup line, operator errors without stack traces, and
 * cluster mode (`workers: 2`) sharing the traffic port with one truthful admin listener.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDpopProof } from '../../src/cli/dpop-proof.ts';
import { sizeThreadPool, threadPoolSize } from '../../src/cli/thread-pool.ts';
import { runCli, type CliResult } from '../fixtures/cli.ts';
import { findPromtool, promtoolWithInput } from '../fixtures/prometheus.ts';
import { CLI, parseMetrics, pidsOnLines, send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterAll(async () => {
  await up?.close();
});

const runServe = (args: string[]): Promise<CliResult> => runCli(['serve', ...args]);

describe('jitgate serve', () => {
  it('case=startup line names the listen addresses; JITGATE_CONFIG works; SIGTERM exits 0', async () => {
    const cfg = await writeGateConfig(up.url);
    const child = spawn(process.execPath, [CLI, 'serve'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, JITGATE_CONFIG: cfg.file } });
    const started = await new Promise<Record<string, any>>((resolve, reject) => {
      let buf = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        for (const line of buf.split('\n')) if (line.includes('"jitgate started"')) resolve(JSON.parse(line));
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    expect(started).toMatchObject({ level: 'info', msg: 'jitgate started', workers: 1, config: cfg.file });
    expect(started.proxy).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(started.admin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await send(started.admin, '/healthz')).status).toBe(200);
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });

  it('case=startup line says the cores the gate may use and where signatures are checked: pinned to one core, on the event loop', async () => {
    const cfg = await writeGateConfig(up.url);
    const startLine = async (wrap: readonly string[]): Promise<Record<string, any>> => {
      const gate = await spawnGate(cfg.file, {}, wrap);
      gate.child.kill('SIGTERM');
      await gate.exited;
      return gate.started;
    };
    expect(await startLine(['taskset', '-c', '0'])).toMatchObject({ cores: 1, signature_checks: 'event loop' });
    expect(await startLine([])).toMatchObject({ cores: availableParallelism(), signature_checks: availableParallelism() > 1 ? 'thread pool' : 'event loop' });
  });

  it('case=invalid config → exit 1 with the key-path lines, no stack trace', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.issuers[0].max_ttl = 'soon';
    });
    const r = await runServe(['-c', cfg.file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`jitgate serve: invalid config ${cfg.file}:\n  issuers[0].max_ttl: expected a duration like "15m", got "soon"\n`);
  });

  it('case=traffic port in use → exit 1 "proxy: listen HOST:PORT: address in use"', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const cfg = await writeGateConfig(up.url, (c) => {
        c.listen = { host: '127.0.0.1', port };
      });
      const r = await runServe(['-c', cfg.file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`jitgate serve: proxy: listen 127.0.0.1:${port}: address in use\n`);
    } finally {
      blocker.close();
    }
  });

  it('case=missing key file → exit 1 naming the file', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.issuers[0].jwks_file = './gone.json';
    });
    const r = await runServe(['-c', cfg.file]);
    expect(r.code).toBe(1);
    // The pre-flight check's line, as check-config words it (src/preflight.ts).
    expect(r.stderr).toMatch(/^jitgate serve: invalid config .*jitgate\.yaml:\n {2}issuers\[0\]\.jwks_file: cannot read .*gone\.json: ENOENT\n$/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('jitgate serve, thread pool', () => {
  /** libuv's pool threads of a running process (they start, all at once, at the pool's first use). */
  function poolThreads(pid: number): number {
    return readdirSync(`/proc/${pid}/task`).filter((t) => readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').startsWith('libuv-worker')).length;
  }

  it('case=threadPoolSize: one thread per core beside the event loop, at least 1, at most libuv\'s 4', () => {
    expect([1, 2, 3, 4, 5, 8, 64].map(threadPoolSize)).toEqual([1, 1, 2, 3, 4, 4, 4]);
    const env: NodeJS.ProcessEnv = {};
    sizeThreadPool(env, 2);
    expect(env.UV_THREADPOOL_SIZE).toBe('1');
    const set: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: '16' };
    sizeThreadPool(set, 2);
    expect(set.UV_THREADPOOL_SIZE).toBe('16');
  });

  for (const [name, env, expected] of [
    ['unset → sized from the cores', { UV_THREADPOOL_SIZE: undefined }, threadPoolSize(availableParallelism())],
    ['empty → sized from the cores', { UV_THREADPOOL_SIZE: '' }, threadPoolSize(availableParallelism())],
    ["the operator's UV_THREADPOOL_SIZE is kept", { UV_THREADPOOL_SIZE: '3' }, 3],
  ] as const) {
    it(`case=${name}: an uncached token is verified by that many pool threads`, async () => {
      const cfg = await writeGateConfig(up.url);
      const gate = await spawnGate(cfg.file, env);
      try {
        const token = await tokenNow(cfg.keys);
        const r = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
        expect(r.status).toBe(200);
        expect(poolThreads(gate.child.pid!)).toBe(expected);
      } finally {
        gate.child.kill('SIGTERM');
      }
      expect(await gate.exited).toEqual({ code: 0, signal: null });
    });
  }
});

const ADMIN_TOKEN = 'cluster-admin-token-0123456789';

/** Polls /readyz until it answers `want`; returns that answer. */
async function readyzBecomes(adminUrl: string, want: number) {
  let r;
  for (let i = 0; i < 150; i++) {
    r = await send(adminUrl, '/readyz');
    if (r.status === want) return r;
    await new Promise((res) => setTimeout(res, 30));
  }
  throw new Error(`readyz stayed ${r?.status}`);
}

/** POST /revocations with one jti entry and the cluster tests' admin token. */
const revokeJti = (adminUrl: string, jti: string) =>
  send(adminUrl, '/revocations', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ jti }) });

/** A two-worker config with the revocation API and its journal. */
async function clusterWithRevocationApi() {
  const cfg = await writeGateConfig(up.url, (c) => {
    c.workers = 2;
    c.admin.token_file = './admin-token';
    c.revocation.journal = './revocations.journal';
  });
  writeFileSync(join(cfg.dir, 'admin-token'), `${ADMIN_TOKEN}\n`);
  return cfg;
}

describe('jitgate serve, workers: 2', () => {
  // Three processes and a worker replaced: up to 21 s with two test files at a time and CPU stress beside them.
  it('case=workers share the port; the primary admin aggregates metrics and readiness; SIGTERM exits 0', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.workers = 2;
    });
    const gate = await spawnGate(cfg.file);
    let victimPid = 0;
    try {
      const started = gate.lines.find((l) => l.msg === 'jitgate started')!;
      expect(started.workers).toBe(2);
      // The primary's lines once named `pid` twice (its own, then a worker's): a reader kept the wrong one.
      expect(started.pid).toBe(gate.child.pid);
      const token = await tokenNow(cfg.keys);
      const N = 20;
      for (let i = 0; i < N; i++) {
        const res = await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
        expect(res.status).toBe(200);
      }
      for (let i = 0; i < 3; i++) expect((await send(gate.url, '/orders/43')).status).toBe(401);
      // Round-robin: both workers served (audit lines carry the worker's pid).
      const pids = await pidsOnLines(gate, (l) => l.type === 'audit', 2);
      expect(pids.size).toBe(2);

      const m = parseMetrics((await send(gate.adminUrl, '/metrics')).text);
      expect(m.get('jitgate_decisions_total{transport="proxy",result="allow",reason="granted"}')).toBe(N);
      expect(m.get('jitgate_decisions_total{transport="proxy",result="deny",reason="missing_token"}')).toBe(3);
      expect(m.get('jitgate_ready')).toBe(1);
      expect(m.get('jitgate_jwks_keys{issuer="https://broker.internal"}')).toBe(2);
      const ready = await send(gate.adminUrl, '/readyz');
      expect(ready.status).toBe(200);
      expect((await send(gate.adminUrl, '/healthz')).status).toBe(200);

      // A worker that dies is reported, replaced, and readiness comes back.
      const victim = [...pids][0]!;
      process.kill(victim, 'SIGKILL');
      const down = await readyzBecomes(gate.adminUrl, 503);
      expect(JSON.parse(down.text).problems).toEqual([expect.stringMatching(/^worker [12]: (not running|no answer)$/)]);
      // /metrics agrees with /readyz while the worker is down (its replacement starts a second later at the earliest),
      // and the dead worker's counts stay in the sums: a cluster counter never goes down (no false counter reset).
      const whileDown = parseMetrics((await send(gate.adminUrl, '/metrics')).text);
      expect(whileDown.get('jitgate_ready')).toBe(0);
      expect(whileDown.get('jitgate_decisions_total{transport="proxy",result="allow",reason="granted"}')).toBe(N);
      expect(whileDown.get('jitgate_cluster_workers{state="missing"}')).toBe(1);
      expect((await readyzBecomes(gate.adminUrl, 200)).status).toBe(200);
      const replacedText = (await send(gate.adminUrl, '/metrics')).text;
      const replaced = parseMetrics(replacedText);
      // The cluster's own exposition passes Prometheus's lint too (where promtool is installed; CI installs it).
      const promtool = findPromtool();
      if (promtool !== undefined || process.env.CI === 'true') expect(await promtoolWithInput(promtool!, ['check', 'metrics'], replacedText)).toMatchObject({ code: 0, output: '' });
      expect(replaced.get('jitgate_ready')).toBe(1);
      expect(replaced.get('jitgate_decisions_total{transport="proxy",result="allow",reason="granted"}')).toBe(N);
      expect(replaced.get('jitgate_decisions_total{transport="proxy",result="deny",reason="missing_token"}')).toBe(3);
      expect(replaced.get('jitgate_cluster_workers{state="answered"}')).toBe(2);
      expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      victimPid = victim;

      // A worker that does not answer (stopped): the scrape still answers, within the 2 s wait, at its last counts.
      const stopped = readFileSync(`/proc/${gate.child.pid}/task/${gate.child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number)[0]!;
      process.kill(stopped, 'SIGSTOP');
      try {
        const t0 = Date.now();
        const scrape = await send(gate.adminUrl, '/metrics');
        expect(scrape.status).toBe(200);
        expect(Date.now() - t0).toBeLessThan(5000);
        const m2 = parseMetrics(scrape.text);
        expect(m2.get('jitgate_cluster_workers{state="missing"}')).toBe(1);
        expect(m2.get('jitgate_ready')).toBe(0);
        expect(m2.get('jitgate_decisions_total{transport="proxy",result="allow",reason="granted"}')).toBeGreaterThanOrEqual(N);
      } finally {
        process.kill(stopped, 'SIGCONT');
      }
    } finally {
      gate.child.kill('SIGTERM');
    }
    expect(await gate.exited).toEqual({ code: 0, signal: null });
    // Log lines are flushed by the exit: the primary's name its own pid once, the dead worker's as worker_pid.
    expect(gate.lines.find((l) => l.msg === 'worker died; starting a new one')).toMatchObject({ worker_pid: victimPid, pid: gate.child.pid });
    expect(gate.repeatedKeys).toEqual([]);
  }, 60_000);

  it('case=the revocation API: the primary journals each POST, every worker enforces it before 201, a replacement worker and a restart keep it', async () => {
    const cfg = await clusterWithRevocationApi();
    const revoked = await tokenNow(cfg.keys, { jti: 'cluster-revoked' });
    const kept = await tokenNow(cfg.keys, { jti: 'cluster-kept' });
    const call = (gateUrl: string, token: string) => send(gateUrl, '/orders/42', { headers: { authorization: `Bearer ${token}` } });
    /** Fresh connections, so the primary hands them to both workers in turn. */
    const statuses = async (gateUrl: string, token: string, n = 8) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await call(gateUrl, token)).status);
      return out;
    };

    let gate = await spawnGate(cfg.file);
    try {
      // Both workers verify and cache the token first, so the revocation must reach cached tokens.
      expect(await statuses(gate.url, revoked)).toEqual(Array(8).fill(200));
      const post = await revokeJti(gate.adminUrl, 'cluster-revoked');
      expect([post.status, JSON.parse(post.text)]).toEqual([201, { accepted: 1, entries: 1 }]);
      // 201 means enforced by every worker: no request after it gets through.
      expect(await statuses(gate.url, revoked)).toEqual(Array(8).fill(401));
      expect(await statuses(gate.url, kept, 4)).toEqual(Array(4).fill(200));
      const refusedBy = await pidsOnLines(gate, (l) => l.type === 'audit' && l.reason === 'revoked', 2);
      expect(refusedBy.size).toBe(2);

      const status = JSON.parse((await send(gate.adminUrl, '/revocations', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text);
      expect(status).toMatchObject({ entries: 1, workers: 2, sources: [{ kind: 'journal', entries: 1 }] });
      const m = parseMetrics((await send(gate.adminUrl, '/metrics')).text);
      expect(m.get(`jitgate_revocation_entries{source="journal:${join(cfg.dir, 'revocations.journal')}"}`)).toBe(1);

      // A replacement worker asks the primary for the entries before it serves.
      process.kill([...refusedBy][0]!, 'SIGKILL');
      await readyzBecomes(gate.adminUrl, 503);
      await readyzBecomes(gate.adminUrl, 200);
      expect(await statuses(gate.url, revoked)).toEqual(Array(8).fill(401));
    } finally {
      gate.child.kill('SIGTERM');
    }
    expect(await gate.exited).toEqual({ code: 0, signal: null });

    // A restart replays the journal in the primary.
    gate = await spawnGate(cfg.file);
    try {
      expect(await statuses(gate.url, revoked)).toEqual(Array(8).fill(401));
      expect(await statuses(gate.url, kept, 4)).toEqual(Array(4).fill(200));
    } finally {
      gate.child.kill('SIGTERM');
    }
    expect(await gate.exited).toEqual({ code: 0, signal: null });
  }, 60_000);

  it('case=a worker that cannot confirm a POST /revocations in time → 503 not_enforced (the entries stay durable and reach it later)', async () => {
    const cfg = await clusterWithRevocationApi();
    const gate = await spawnGate(cfg.file);
    const workers = (): number[] =>
      readFileSync(`/proc/${gate.child.pid}/task/${gate.child.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .map(Number);
    let stopped: number | undefined;
    try {
      expect((await revokeJti(gate.adminUrl, 'first')).status).toBe(201);
      stopped = workers()[0]!;
      process.kill(stopped, 'SIGSTOP');
      const started = Date.now();
      const r = await revokeJti(gate.adminUrl, 'second');
      expect(r.status).toBe(503);
      expect(JSON.parse(r.text)).toMatchObject({ error: 'unavailable', reason: 'not_enforced' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(4500);
      process.kill(stopped, 'SIGCONT');
      stopped = undefined;
      // Durable all the same: both workers refuse it once the stopped one has caught up.
      const token = await tokenNow(cfg.keys, { jti: 'second' });
      for (let i = 0; i < 6; i++) expect((await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
      expect(readFileSync(join(cfg.dir, 'revocations.journal'), 'utf8')).toContain('"second"');
    } finally {
      if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
      gate.child.kill('SIGTERM');
    }
    expect(await gate.exited).toEqual({ code: 0, signal: null });
  }, 30_000);

  it('case=DPoP with workers: 2: a proof is single-use across workers, and a nonce from one worker is good at the other', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.workers = 2;
      c.dpop = { use_nonce: true };
    });
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), alg: 'ES256' };
    const token = await tokenNow(cfg.keys, { jti: 'dpop-cluster', cnf: { jkt: await calculateJwkThumbprint(jwk) } });
    const gate = await spawnGate(cfg.file);
    try {
      const url = `${gate.url}/orders/42`;
      const call = (proof: string) => send(gate.url, '/orders/42', { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      const first = await call(await makeDpopProof({ key: jwk, method: 'GET', url, token }));
      expect(first.status).toBe(401);
      const nonce = first.headers['dpop-nonce'] as string;
      expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Fresh connections alternate between the workers: each accepts the nonce the other made.
      for (let i = 0; i < 6; i++) expect((await call(await makeDpopProof({ key: jwk, method: 'GET', url, token, nonce }))).status).toBe(200);
      // One captured proof, replayed on fresh connections: accepted once in the whole cluster.
      const proof = await makeDpopProof({ key: jwk, method: 'GET', url, token, nonce });
      const replays = [];
      for (let i = 0; i < 6; i++) replays.push(await call(proof));
      expect(replays.map((r) => r.status)).toEqual([200, 401, 401, 401, 401, 401]);
      for (const r of replays.slice(1)) expect(JSON.parse(r.text).reason).toBe('dpop_replay');
      expect((await pidsOnLines(gate, (l) => l.type === 'audit' && l.reason === 'dpop_replay', 2)).size).toBe(2);
    } finally {
      gate.child.kill('SIGTERM');
    }
    expect(await gate.exited).toEqual({ code: 0, signal: null });
  }, 30_000);
});
