/**
 * SPEC §12 anomaly response against real `jitgate serve` processes: a token probing outside its
 * grant (403) or with malformed requests (400) is revoked once it crosses anomaly.deny_threshold
 * within anomaly.window, through the journal (durable across a restart), in one process and with
 * `workers: 2`. Below the threshold, outside the window, or without `anomaly`, nothing is revoked.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../fixtures/cli.ts';
import { parseMetrics, send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';

let up: RecordingUpstream;
const dirs: string[] = [];
const gates: GateProcess[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
});
afterEach(async () => {
  await Promise.all(gates.splice(0).map((g) => stop(g)));
});
afterAll(async () => {
  await up?.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function stop(g: GateProcess): Promise<void> {
  if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGTERM');
  await g.exited;
}

type Patch = (c: Record<string, any>) => void;

async function gateWith(patch: Patch) {
  const cfg = await writeGateConfig(up.url, (c) => {
    c.revocation.journal = './revocations.journal';
    c.anomaly = { deny_threshold: 3, window: '1m', revoke: 'txn' };
    patch(c);
  });
  dirs.push(cfg.dir);
  const g = await spawnGate(cfg.file);
  gates.push(g);
  return { cfg, g };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

/** Waits (bounded) for the gate's stdout to show a line; the log is flushed at least once a second. */
async function waitForLine(g: GateProcess, pred: (l: Record<string, any>) => boolean, ms = 5000): Promise<Record<string, any>> {
  const until = Date.now() + ms;
  for (;;) {
    const found = g.lines.find(pred);
    if (found !== undefined) return found;
    if (Date.now() > until) throw new Error(`no matching log line within ${ms} ms; stderr: ${g.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const revokedLine = (l: Record<string, any>) => l.type === 'audit' && l.decision === 'anomaly_revoked';

describe('anomaly revocation (one process)', () => {
  it('case=403 probing crosses the threshold → the task is revoked: its tokens get 401 revoked, another task is unaffected', async () => {
    const { cfg, g } = await gateWith(() => {});
    const probe = await tokenNow(cfg.keys, { jti: 'probe-1', txn: 'task-a' });
    const sibling = await tokenNow(cfg.keys, { jti: 'probe-2', txn: 'task-a' });
    const other = await tokenNow(cfg.keys, { jti: 'other-1', txn: 'task-b' });
    expect((await send(g.url, '/orders/42', { headers: bearer(probe) })).status).toBe(200);
    for (const p of ['/orders/1', '/admin', '/orders/43/items']) {
      const r = await send(g.url, p, { headers: bearer(probe) });
      expect(r.status).toBe(403);
    }
    const line = await waitForLine(g, revokedLine);
    expect(line).toMatchObject({ outcome: 'ok', jti: 'probe-1', txn: 'task-a', sub: 'spiffe://prod/ci-deployer', revoke: 'txn', refusals: 3, window_ms: 60_000, reason: 'path_not_granted' });
    expect(line.revoked.txn).toBe('task-a');
    expect(line.revoked.exp).toBeGreaterThan(Date.now() / 1000);

    for (const t of [probe, sibling]) {
      const r = await send(g.url, '/orders/42', { headers: bearer(t) });
      expect(r.status).toBe(401);
      expect(JSON.parse(r.text).reason).toBe('revoked');
    }
    expect((await send(g.url, '/orders/42', { headers: bearer(other) })).status).toBe(200);

    const journal = (await readFile(join(cfg.dir, 'revocations.journal'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(journal).toEqual([{ txn: 'task-a', exp: line.revoked.exp }]);
    const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
    expect(m.get('jitgate_anomaly_revocations_total{revoke="txn",result="ok"}')).toBe(1);
    expect(m.get('jitgate_anomaly_refusals_total{status="403"}')).toBe(3);

    // Durable: a restarted gate replays the journal and still refuses the task.
    await stop(g);
    const again = await spawnGate(cfg.file);
    gates.push(again);
    const r = await send(again.url, '/orders/42', { headers: bearer(sibling) });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.text).reason).toBe('revoked');
    expect((await send(again.url, '/orders/42', { headers: bearer(other) })).status).toBe(200);
  });

  it('case=400 probing with a valid token counts (the answer stays 400); a 400 with a forged token does not', async () => {
    const { cfg, g } = await gateWith((c) => {
      c.anomaly.revoke = 'jti';
    });
    const probe = await tokenNow(cfg.keys, { jti: 'dots-1', txn: 'task-c' });
    const sibling = await tokenNow(cfg.keys, { jti: 'dots-2', txn: 'task-c' });
    const forged = `${probe.slice(0, -4)}AAAA`;
    // A forged token's 400s are not counted against the real token's jti.
    for (let i = 0; i < 3; i++) expect((await send(g.url, '/orders/42/%2e%2e/admin', { headers: bearer(forged) })).status).toBe(400);
    expect((await send(g.url, '/orders/42', { headers: bearer(probe) })).status).toBe(200);
    expect(g.lines.some(revokedLine)).toBe(false);

    const targets = ['/orders/42/%2e%2e/admin', '/orders//42', '/orders/42%2fadmin'];
    for (const p of targets) {
      const r = await send(g.url, p, { headers: bearer(probe) });
      expect(r.status).toBe(400);
    }
    const line = await waitForLine(g, revokedLine);
    expect(line).toMatchObject({ jti: 'dots-1', revoke: 'jti', revoked: { jti: 'dots-1' }, refusals: 3 });
    // The target did not parse: "path":null, as on the decision line of the same refusal.
    expect(line.path).toBeNull();
    // revoke: jti → the token's own exp, so the entry is pruned when the token could no longer be used.
    expect(line.revoked.exp).toBe(JSON.parse(Buffer.from(probe.split('.')[1]!, 'base64url').toString()).exp);
    expect(JSON.parse((await send(g.url, '/orders/42', { headers: bearer(probe) })).text).reason).toBe('revoked');
    // jti mode: the rest of the task is unaffected.
    expect((await send(g.url, '/orders/42', { headers: bearer(sibling) })).status).toBe(200);
    const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
    expect(m.get('jitgate_anomaly_refusals_total{status="400"}')).toBe(3);
  });

  it('case=400s with a certificate-bound token are not counted: its holder without the certificate could not use it (a review)', async () => {
    const { cfg, g } = await gateWith(() => {});
    const bound = await tokenNow(cfg.keys, { jti: 'bound-1', txn: 'victim-task', cnf: { 'x5t#S256': 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg' } });
    for (let i = 0; i < 4; i++) expect((await send(g.url, '/orders/42/%2e%2e/admin', { headers: bearer(bound) })).status).toBe(400);
    // Without its certificate the token is refused on a valid path too: it was never usable here.
    expect((await send(g.url, '/orders/42', { headers: bearer(bound) })).status).toBe(401);
    const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
    expect(m.get('jitgate_anomaly_refusals_total{status="400"}') ?? 0).toBe(0);
    expect(g.lines.some(revokedLine)).toBe(false);
    expect(await readFile(join(cfg.dir, 'revocations.journal'), 'utf8').catch(() => '')).not.toContain('victim-task');
  });

  it('case=below the threshold, or spread beyond the window → no revocation', async () => {
    const { cfg, g } = await gateWith((c) => {
      c.anomaly = { deny_threshold: 2, window: '1s', revoke: 'txn' };
    });
    const t = await tokenNow(cfg.keys, { jti: 'slow-1', txn: 'task-d' });
    expect((await send(g.url, '/orders/1', { headers: bearer(t) })).status).toBe(403);
    await new Promise((r) => setTimeout(r, 1300)); // the first refusal leaves the 1 s window
    expect((await send(g.url, '/orders/2', { headers: bearer(t) })).status).toBe(403);
    expect((await send(g.url, '/orders/42', { headers: bearer(t) })).status).toBe(200);
    const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
    expect(m.get('jitgate_anomaly_refusals_total{status="403"}')).toBe(2);
    expect(m.get('jitgate_anomaly_revocations_total{revoke="txn",result="ok"}')).toBeUndefined();
    expect(g.lines.some(revokedLine)).toBe(false);
  });

  it('case=revoke: sub → every token of that subject issued until now is refused, the prober\'s own with an iat ahead of the gate too; other subjects are not', async () => {
    const { cfg, g } = await gateWith((c) => {
      c.anomaly.revoke = 'sub';
    });
    // Issued 4 s ahead of the gate's clock, inside the default 5 s clock_tolerance: accepted, so revocable.
    const ahead = Math.floor(Date.now() / 1000) + 4;
    const t = await tokenNow(cfg.keys, { jti: 's-1', sub: 'spiffe://prod/prober', iat: ahead, exp: ahead + 300 });
    const same = await tokenNow(cfg.keys, { jti: 's-2', sub: 'spiffe://prod/prober', txn: 'elsewhere' });
    const stranger = await tokenNow(cfg.keys, { jti: 's-3', sub: 'spiffe://prod/honest' });
    for (let i = 0; i < 3; i++) expect((await send(g.url, `/orders/${i}`, { headers: bearer(t) })).status).toBe(403);
    const line = await waitForLine(g, revokedLine);
    expect(line.revoked).toMatchObject({ sub: 'spiffe://prod/prober' });
    expect(line.revoked.before).toBeGreaterThan(Math.floor(Date.now() / 1000) - 5);
    expect(line.revoked.before).toBeGreaterThan(ahead);
    for (const token of [t, same]) expect(JSON.parse((await send(g.url, '/orders/42', { headers: bearer(token) })).text).reason).toBe('revoked');
    expect((await send(g.url, '/orders/42', { headers: bearer(stranger) })).status).toBe(200);
  });

  it('case=no anomaly config → refusals are never counted or revoked', async () => {
    const { cfg, g } = await gateWith((c) => {
      delete c.anomaly;
    });
    const t = await tokenNow(cfg.keys, { jti: 'free-1' });
    for (let i = 0; i < 8; i++) expect((await send(g.url, `/orders/${i}`, { headers: bearer(t) })).status).toBe(403);
    expect((await send(g.url, '/orders/42', { headers: bearer(t) })).status).toBe(200);
    const m = parseMetrics((await send(g.adminUrl, '/metrics')).text);
    expect(m.get('jitgate_anomaly_refusals_total{status="403"}')).toBeUndefined();
    expect(g.lines.some(revokedLine)).toBe(false);
    await expect(readFile(join(cfg.dir, 'revocations.journal'), 'utf8')).resolves.toBe('');
  });

  it('case=anomaly without a durable store → config error naming the keys (check-config and serve)', async () => {
    const cfg = await writeGateConfig(up.url, (c) => {
      c.anomaly = { deny_threshold: 3 };
    });
    dirs.push(cfg.dir);
    const expected = `invalid config ${cfg.file}:\n  anomaly: needs a durable revocation store to write to; set revocation.journal (or revocation.redis), or remove anomaly\n`;
    const check = await runCli(['check-config', '-c', cfg.file]);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain(expected);
    const serve = await runCli(['serve', '-c', cfg.file]);
    expect(serve.code).toBe(1);
    expect(serve.stderr).toBe(`jitgate serve: ${expected}`);
  });
});

describe('anomaly revocation (workers: 2)', () => {
  it('case=refusals through both workers are counted together: the threshold-th revokes, once, and every worker refuses the task', async () => {
    const { cfg, g } = await gateWith((c) => {
      c.workers = 2;
    });
    const probe = await tokenNow(cfg.keys, { jti: 'cl-1', txn: 'task-w' });
    const sibling = await tokenNow(cfg.keys, { jti: 'cl-2', txn: 'task-w' });
    const other = await tokenNow(cfg.keys, { jti: 'cl-3', txn: 'task-x' });
    // Fresh connections are handed out round-robin: the threshold's three refusals reach both workers.
    for (let i = 0; i < 3; i++) expect((await send(g.url, `/orders/${i}`, { headers: bearer(probe) })).status).toBe(403);
    const line = await waitForLine(g, revokedLine);
    expect(line).toMatchObject({ jti: 'cl-1', txn: 'task-w', revoke: 'txn', refusals: 3 });
    const refusals = (l: Record<string, any>) => l.type === 'audit' && l.jti === 'cl-1' && l.status === 403;
    await waitForLine(g, () => g.lines.filter(refusals).length === 3);
    expect(new Set(g.lines.filter(refusals).map((l) => l.pid)).size).toBe(2);
    // Every worker refuses the task (eight fresh connections reach both), and serves the other task.
    for (let i = 0; i < 8; i++) {
      const r = await send(g.url, '/orders/42', { headers: bearer(i % 2 === 0 ? probe : sibling) });
      expect(r.status).toBe(401);
      expect(JSON.parse(r.text).reason).toBe('revoked');
      expect((await send(g.url, '/orders/42', { headers: bearer(other) })).status).toBe(200);
    }
    const journal = (await readFile(join(cfg.dir, 'revocations.journal'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(journal).toEqual([expect.objectContaining({ txn: 'task-w' })]);
    expect(g.lines.filter(revokedLine)).toHaveLength(1);
  });
});
