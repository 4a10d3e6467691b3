import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { applyV8Flags } from '../../src/v8-flags.ts';

const run = promisify(execFile);
const FLAGS = new URL('../../src/v8-flags.ts', import.meta.url).href;

/**
 * A child process that applies jitgate's V8 settings (or not), then fills an array from one allocation site, which
 * V8 pretenures when it may. `--trace-pretenuring-statistics` prints each pretenuring decision V8 takes.
 */
async function pretenuringDecisions(nodeFlags: string[], apply: boolean): Promise<{ decisions: number; applied: string[] }> {
  const script = `
    const applied = ${apply} ? (await import(${JSON.stringify(FLAGS)})).applyV8Flags() : [];
    const keep = [];
    const make = (i) => ({ a: i, b: [i], c: { d: i } });
    for (let i = 0; i < 1_000_000; i++) keep.push(make(i));
    console.error(JSON.stringify({ applied, kept: keep.length }));`;
  const { stdout, stderr } = await run(process.execPath, [...nodeFlags, '--trace-pretenuring-statistics', '--input-type=module', '-e', script], {
    env: { ...process.env, NODE_OPTIONS: '' },
    maxBuffer: 16 * 1024 * 1024,
  });
  // V8 writes its trace lines to stdout (a "[pid:0x…] " prefix, then the text), and a GC may still run after our line,
  // as the process exits: a CI run once ended stdout with such a prefix. Ours goes to stderr, which holds nothing else.
  const lines = stdout.split('\n');
  const result = stderr.split('\n').findLast((l) => l.startsWith('{"applied":'));
  expect(result, `the child printed its result line; stderr: ${stderr.slice(0, 500)}`).toBeDefined();
  const last = JSON.parse(result!) as { applied: string[]; kept: number };
  expect(last.kept).toBe(1_000_000);
  return { decisions: lines.filter((l) => l.includes('pretenuring: AllocationSite')).length, applied: last.applied };
}

describe('applyV8Flags: allocation-site pretenuring', () => {
  it('V8 pretenures the site by default (the check below can fail)', async () => {
    const { decisions } = await pretenuringDecisions([], false);
    expect(decisions).toBeGreaterThan(0);
  });

  it('turns pretenuring off in a running process: V8 takes no pretenuring decision afterwards', async () => {
    const { decisions, applied } = await pretenuringDecisions([], true);
    expect(applied).toEqual(['--no-allocation-site-pretenuring']);
    expect(decisions).toBe(0);
  });

  it("leaves an operator's own --allocation-site-pretenuring alone", async () => {
    const { decisions, applied } = await pretenuringDecisions(['--allocation-site-pretenuring'], true);
    expect(applied).toEqual([]);
    expect(decisions).toBeGreaterThan(0);
  });

  it('knows the flag in either spelling, with or without no-', () => {
    // Nothing is applied in these calls, so the test process keeps its own settings.
    expect(applyV8Flags(['--max-old-space-size=512', '--no-allocation-site-pretenuring'])).toEqual([]);
    expect(applyV8Flags(['--allocation_site_pretenuring'])).toEqual([]);
  });
});
