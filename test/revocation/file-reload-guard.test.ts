/**
 * Issue 21 item 5: a badly replaced revocation file must not un-revoke anything. A real gate
 * process (`jitgate serve`) proxies to a real upstream while its revocation file is replaced the
 * ways the fault campaign measured: 100,003 entries cut mid-line, an HTML error page, zero bytes,
 * and a rewrite in place while a client keeps probing with the revoked token. Each refused reload
 * keeps the last good list, is counted in jitgate_revocation_reload_refused_total and shown in
 * /readyz (still ready: the list in force is the last good one). Clearing the list on purpose takes
 * the marker line `# jitgate: empty`.
 */
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLEAR_MARKER } from '../../src/revocation/reload-guard.ts';
import { parseMetrics, send, spawnGate, startRecordingUpstream, tokenNow, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';
import type { TestKeys } from '../fixtures/gate.ts';

const ENTRIES = 100_002;
let upstream: RecordingUpstream;
let gate: GateProcess;
let keys: TestKeys;
let dir: string;
let file: string;
let revoked: string;
let full: string;

async function status(token: string): Promise<number> {
  return (await send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${token}` } })).status;
}

async function refusals(reason: string): Promise<number> {
  const text = (await send(gate.adminUrl, '/metrics')).text;
  return parseMetrics(text).get(`jitgate_revocation_reload_refused_total{source="file:${file}",reason="${reason}"}`) ?? 0;
}

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The way writers should do it: a temp file renamed over the list. */
async function replaceAtomically(text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  const w = await writeGateConfig(upstream.url, (c) => (c.revocation.poll_interval = '50ms'));
  ({ keys, dir } = w);
  file = w.revokedFile;
  gate = await spawnGate(w.file);
  revoked = await tokenNow(keys, { jti: 'revoked-last' });
  // 100,003 lines, the revoked token's last: a file cut anywhere loses it first.
  const lines: string[] = [];
  for (let i = 0; i < ENTRIES; i++) lines.push(`{"jti":"bulk-${i}-${'x'.repeat(i % 23)}"}`);
  lines.push('{"jti":"revoked-last"}');
  full = `${lines.join('\n')}\n`;
  await replaceAtomically(full);
  await until(async () => (await status(revoked)) === 401, 10_000, 'the revocation to load');
}, 30_000);

afterAll(async () => {
  gate?.child.kill('SIGKILL');
  await gate?.exited;
  await upstream?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a refused reload keeps the last good list', () => {
  it.each([
    ['100k entries cut mid-line', 'torn_tail', () => full.slice(0, Math.floor(full.length / 2) + 7)],
    ['an HTML error page', 'no_valid_line', () => '<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>\n'],
    ['zero bytes', 'empty', () => ''],
  ])('%s → refused (%s): the revoked token stays 401, /readyz says why', async (_what, reason, text) => {
    const before = await refusals(reason);
    await replaceAtomically(text());
    await until(async () => (await refusals(reason)) > before, 10_000, `a ${reason} refusal`);
    expect(await status(revoked)).toBe(401);
    expect(await status(await tokenNow(keys, { jti: 'fine' }))).toBe(200);
    const ready = await send(gate.adminUrl, '/readyz');
    expect(ready.status).toBe(200);
    const body = JSON.parse(ready.text) as { status: string; problems: string[] };
    expect(body.status).toBe('ready');
    expect(body.problems.join('\n')).toContain(`last reload refused (${reason})`);
    // Fixed: the next good file loads and the problem goes away.
    await replaceAtomically(full);
    await until(async () => JSON.parse((await send(gate.adminUrl, '/readyz')).text).problems === undefined, 10_000, 'the good reload');
    expect(await status(revoked)).toBe(401);
  });

  it('a file rewritten in place (truncate, then 64 KiB writes) never lets the revoked token through', async () => {
    const fine = await tokenNow(keys, { jti: 'probe-fine' });
    const bytes = Buffer.from(full);
    let stop = false;
    let rewrites = 0;
    const writer = (async () => {
      while (!stop) {
        const fh = await open(file, 'w'); // truncates: the gate may read zero bytes now
        for (let at = 0; at < bytes.length; at += 65_536) {
          await fh.write(bytes.subarray(at, at + 65_536));
          await new Promise((r) => setTimeout(r, 2)); // a slow writer: half-written states last
        }
        await fh.close();
        rewrites++;
      }
    })();
    const seen = new Map<number, number>();
    const until_ = Date.now() + 4_000;
    while (Date.now() < until_) {
      const [r, f] = await Promise.all([status(revoked), status(fine)]);
      seen.set(r, (seen.get(r) ?? 0) + 1);
      expect(f).toBe(200);
    }
    stop = true;
    await writer;
    console.log(`[in-place rewrite] ${rewrites} rewrites; revoked token answered ${JSON.stringify([...seen])}`);
    expect(rewrites).toBeGreaterThan(2);
    expect([...seen.keys()]).toEqual([401]);
  }, 20_000);

  it(`clearing on purpose: a file with the line "${CLEAR_MARKER}" empties the list`, async () => {
    await replaceAtomically(`${CLEAR_MARKER}\n`);
    await until(async () => (await status(revoked)) === 200, 10_000, 'the list to clear');
    const ready = JSON.parse((await send(gate.adminUrl, '/readyz')).text) as Record<string, unknown>;
    expect(ready).toEqual({ status: 'ready' });
  });
});
