import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flameGraphSvg, foldCpuProfile, foldedText, foldPerfScript, hueOf, writeFlameGraph, type CpuProfile } from '../../bench/macro/flamegraph.ts';

// `perf script -F comm,tid,ip,sym,dso` as perf 6.1 prints it: leaf first, one blank line per sample.
const PERF_SCRIPT = [
  'MainThread  4944 ',
  '\t         249782d JS:*onRequest file:///work/main/src/transports/proxy/handler.ts:40:3 ([JIT] tid 4944)',
  '\t          6f0e76 non-virtual thunk to node::LibuvStreamWrap::DoTryWrite(uv_buf_t**, unsigned long*) (/work/main/node_modules/node/bin/node)',
  '\t           891f5 uv_run (/work/main/node_modules/node/bin/node)',
  '',
  'MainThread  4944 ',
  '\tffffffff813a2313 tcp_sendmsg ([kernel.kallsyms])',
  '\t           891f5 uv_run (/work/main/node_modules/node/bin/node)',
  '',
  'libuv-worker  4950 ',
  '\t          1234ab ecp_nistz256_point_add (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)',
  '\t          5678cd [unknown] (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)',
  '',
  'libuv-worker  4951 ',
  '\t          1234ab ecp_nistz256_point_add (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)',
  '\t          5678cd [unknown] (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)',
  '',
].join('\n');

describe('foldPerfScript', () => {
  const folded = foldPerfScript(PERF_SCRIPT);

  it('folds each sample root first under its thread name, pool threads sharing one tower', () => {
    expect([...folded]).toEqual([
      ['MainThread;uv_run;non-virtual thunk to node::LibuvStreamWrap::DoTryWrite(uv_buf_t**, unsigned long*);JS onRequest src/transports/proxy/handler.ts:40:3', 1],
      ['MainThread;uv_run;tcp_sendmsg [k]', 1],
      ['libuv-worker;[unknown] (libcrypto.so.3);ecp_nistz256_point_add', 2],
    ]);
  });

  it('writes the folded format other flame graph tools read', () => {
    expect(foldedText(folded).split('\n')[2]).toBe('libuv-worker;[unknown] (libcrypto.so.3);ecp_nistz256_point_add 2');
  });

  it('colours by where the code lives', () => {
    expect(hueOf('JS onRequest src/transports/proxy/handler.ts:40:3')).toBe(110);
    expect(hueOf('JS readMore node_modules/undici/lib/dispatcher/client-h1.js:307:12')).toBe(185);
    expect(hueOf('JS emitReadable_ node:internal/streams/readable:841:23')).toBe(55);
    expect(hueOf('node::StreamBase::Write')).toBe(15);
    expect(hueOf('ecp_nistz256_point_add')).toBe(290);
    expect(hueOf('__ecp_nistz256_mul_montx')).toBe(290);
    expect(hueOf('tcp_sendmsg [k]')).toBe(0);
  });
});

describe('flameGraphSvg', () => {
  const folded = foldPerfScript(PERF_SCRIPT);
  const svg = flameGraphSvg(folded, { title: 'a <test> & more', unit: 'samples', width: 1020, minShare: 0 });
  const frames = [...svg.matchAll(/<title>(.*?) \(([\d.]+) %, ([\d,]+) samples\)<\/title><rect x="([\d.]+)" y="(\d+)" width="([\d.]+)"/g)].map((m) => ({
    name: m[1]!,
    share: Number(m[2]),
    weight: Number(m[3]!.replace(/,/g, '')),
    x: Number(m[4]),
    y: Number(m[5]),
    w: Number(m[6]),
  }));
  const frame = (name: string) => frames.find((f) => f.name === name)!;

  it('draws each frame as wide as its share, children inside their parent, root at the bottom', () => {
    expect(frame('all')).toMatchObject({ share: 100, weight: 4 });
    expect(frame('MainThread')).toMatchObject({ share: 50, weight: 2 });
    expect(frame('libuv-worker')).toMatchObject({ share: 50, weight: 2 });
    // 1000 px of drawing width: half of it, less the half-pixel gap between frames.
    expect(frame('MainThread').w).toBeCloseTo(499.5, 1);
    expect(frame('tcp_sendmsg [k]').w).toBeCloseTo(249.5, 1);
    const pool = frame('libuv-worker');
    const leaf = frame('ecp_nistz256_point_add');
    expect(leaf.x).toBeGreaterThanOrEqual(pool.x);
    expect(leaf.x + leaf.w).toBeLessThanOrEqual(pool.x + pool.w + 0.01);
    expect(leaf.y).toBeLessThan(pool.y);
    expect(frame('all').y).toBeGreaterThan(pool.y);
  });

  it('escapes names and the title', () => {
    expect(svg).toContain('a &lt;test&gt; &amp; more');
    expect(svg).not.toContain('<test>');
    expect(() => new DOMParserLike(svg)).not.toThrow();
  });

  it('leaves out frames below the minimum share', () => {
    const big = new Map([['a;b', 9999], ['a;c', 1]]);
    const out = flameGraphSvg(big, { title: 't', unit: 'samples', minShare: 0.001 });
    expect(out).toContain('<title>b (99.99 %');
    expect(out).not.toContain('<title>c (');
  });
});

/** Well-formedness check without a DOM: every tag opened is closed in order. */
class DOMParserLike {
  constructor(xml: string) {
    const stack: string[] = [];
    for (const m of xml.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
      if (m[3] === '/') continue;
      if (m[1] === '/') {
        if (stack.pop() !== m[2]) throw new Error(`unbalanced </${m[2]}>`);
      } else stack.push(m[2]!);
    }
    if (stack.length !== 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  }
}

describe('a real V8 profile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jitgate-flame-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('folds node --cpu-prof output into stacks that name the busy function, and writes the SVG beside it', () => {
    const script = join(dir, 'busy.mjs');
    writeFileSync(
      script,
      'function spinHere(ms) { const end = Date.now() + ms; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1); return x; }\n' +
        'function outerCaller() { return spinHere(300); }\nouterCaller();\n',
    );
    execFileSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-name=busy.cpuprofile', script]);
    const profile = JSON.parse(readFileSync(join(dir, 'busy.cpuprofile'), 'utf8')) as CpuProfile;
    const folded = foldCpuProfile(profile);
    let total = 0;
    let busy = 0;
    for (const [stack, w] of folded) {
      total += w;
      if (/outerCaller \S+busy\.mjs:2;spinHere \S+busy\.mjs:1/.test(stack)) busy += w;
      expect(stack.startsWith('(idle)')).toBe(false);
    }
    expect(busy / total).toBeGreaterThan(0.5);

    const svgPath = writeFlameGraph(join(dir, 'busy.cpuprofile'), 'busy');
    expect(svgPath).toBe(join(dir, 'busy.svg'));
    expect(readFileSync(svgPath, 'utf8')).toMatch(/<title>spinHere \S+busy\.mjs:1 \(\d+\.\d+ %/);
    expect(readdirSync(dir)).toContain('busy.svg');
  });
});
