/**
 * `jitgate bench` aimed at a running `jitgate demo`: tokens minted from the demo's key, a mix of kinds, every
 * answer checked against what the kind expects; a wrong audience makes the allowed kind fail and the exit code 1.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_AUDIENCE, DEMO_ISSUER } from '../../src/demo/demo-config.ts';
import { parseMix, schedule } from '../../src/loadgen/mix.ts';
import { forgeSignature } from '../../src/loadgen/requests.ts';
import { runCli } from '../fixtures/cli.ts';
import { startDemo, type Demo } from '../fixtures/demo.ts';
import { tempDir } from '../fixtures/keys.ts';

let demo: Demo;
let target: string;
let out: string;

beforeAll(async () => {
  demo = await startDemo(await tempDir('jitgate-bench-demo-'));
  target = new URL(/curl [^\n]*?(http:\/\/127\.0\.0\.1:\d+)\//.exec(demo.stdout)![1]!).origin;
  out = await tempDir('jitgate-bench-out-');
}, 30_000);

afterAll(async () => {
  if (demo?.child.exitCode === null) {
    demo.child.kill('SIGTERM');
    await demo.exited;
  }
  await Promise.all([demo && rm(demo.dir, { recursive: true, force: true }), out && rm(out, { recursive: true, force: true })]);
});

const base = () => ['bench', '--target', target, '--key', join(demo.dir, 'private.jwk.json'), '--iss', DEMO_ISSUER, '--path', '/orders/42', '--connections', '4'];

interface Report {
  result: { completed: number; unexpected: number; statuses: Record<string, number>; byKind: Record<string, { sent: number; unexpected: number; statuses: Record<string, number> }> };
}

describe('jitgate bench against jitgate demo', () => {
  it('sends the mix, gets what each kind expects, and exits 0', async () => {
    const json = join(out, 'run.json');
    const md = join(out, 'run.md');
    const r = await runCli([...base(), '--aud', DEMO_AUDIENCE, '--tokens', '20', '--mix', 'allow=70,outside=10,bad-signature=10,no-token=5,expired=5', '--duration', '2s', '--json', json, '--markdown', md]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/throughput\s+\d+ req\/s/);
    expect(r.stdout).toMatch(/unexpected answers\s+0/);
    const report = JSON.parse(await readFile(json, 'utf8')) as Report;
    expect(report.result.unexpected).toBe(0);
    expect(report.result.completed).toBeGreaterThan(50);
    const k = report.result.byKind;
    expect(Object.keys(k.allow!.statuses)).toEqual(['200']);
    expect(Object.keys(k.outside!.statuses)).toEqual(['403']);
    expect(Object.keys(k['bad-signature']!.statuses)).toEqual(['401']);
    expect(Object.keys(k['no-token']!.statuses)).toEqual(['401']);
    expect(Object.keys(k.expired!.statuses)).toEqual(['401']);
    // The proportions follow the mix (70 % allow, give or take the run's last requests).
    const sent = Object.values(k).reduce((a, v) => a + v.sent, 0);
    expect(k.allow!.sent / sent).toBeGreaterThan(0.6);
    expect(k.allow!.sent / sent).toBeLessThan(0.8);
    expect(await readFile(md, 'utf8')).toMatch(/^\| measure \| value \|/);
  });

  it('reports answers that are not what the kind expects, and exits 1', async () => {
    const json = join(out, 'wrong.json');
    const r = await runCli([...base(), '--aud', 'not-the-audience', '--tokens', '5', '--duration', '1s', '--json', json]);
    expect(r.code).toBe(1);
    const report = JSON.parse(await readFile(json, 'utf8')) as Report;
    expect(report.result.unexpected).toBe(report.result.completed);
    expect(report.result.byKind.allow!.statuses['401']).toBe(report.result.completed);
  });

  it('paces an offered rate', async () => {
    const json = join(out, 'rate.json');
    const r = await runCli([...base(), '--aud', DEMO_AUDIENCE, '--tokens', '5', '--duration', '2s', '--rate', '100', '--json', json]);
    expect(r.code).toBe(0);
    const report = JSON.parse(await readFile(json, 'utf8')) as Report;
    // 100 req/s for 2 s: at most 200 requests (and the few in flight at the end), never the thousands an unpaced
    // run sends. Fewer is possible on a starved machine (the gate answers slower than offered), none is not.
    expect(report.result.completed).toBeGreaterThan(20);
    expect(report.result.completed).toBeLessThanOrEqual(204);
  });

  it('refuses bad flags with a usage error', async () => {
    expect((await runCli(['bench', '--target', target])).code).toBe(2);
    const bad = await runCli([...base(), '--aud', 'x', '--mix', 'allow=90,teleport=10']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown kind "teleport"');
  });
});

describe('bench mix and forging', () => {
  it('spreads kinds by weight, evenly', () => {
    const s = schedule(parseMix('allow=90,outside=5,bad-signature=5'), 100);
    expect(s.filter((k) => k === 'allow')).toHaveLength(90);
    expect(s.filter((k) => k === 'outside')).toHaveLength(5);
    // No run of two non-allow kinds back to back at this mix.
    for (let i = 1; i < s.length; i++) expect(s[i] !== 'allow' && s[i - 1] !== 'allow').toBe(false);
  });

  it('forges a signature that still parses: only one signature character changes', () => {
    const t = 'aaa.bbb.cdefgA';
    const f = forgeSignature(t);
    expect(f).not.toBe(t);
    expect(f.split('.').slice(0, 2)).toEqual(['aaa', 'bbb']);
    expect([...f].filter((c, i) => c !== t[i])).toHaveLength(1);
  });
});
