/**
 * Where a jitgate process spent its time: reads a V8 `.cpuprofile` (from `npm run bench --
 * --profile`, which starts the gate with `--cpu-prof`) and prints self time by function and by
 * area (jitgate's own modules by folder, each dependency, node internals, GC, idle), plus the
 * inclusive time of a few jitgate functions worth watching.
 *
 *   node bench/macro/profile.ts bench/results/profiles/<stamp>/<file>.cpuprofile [--top 30]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
export interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
/** A V8 `.cpuprofile` as written by `--cpu-prof`. */
export interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return '(program: native, outside JS)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const src = url.indexOf('/src/');
  if (src !== -1) {
    const parts = url.slice(src + 5).split('/');
    return `jitgate ${parts.length > 1 ? parts.slice(0, -1).join('/') : parts[0]}`;
  }
  if (url.startsWith('node:')) return url.replace(/^node:internal\/([^/]+).*/, 'node:$1');
  return url === '' ? '(native)' : url;
}

export function summarize(p: Profile, top: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });
  const fnSelf = new Map<string, number>();
  const areaSelf = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    const cf = n.callFrame;
    const name = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${cf.lineNumber + 1}`;
    fnSelf.set(name, (fnSelf.get(name) ?? 0) + t);
    const ar = area(cf.url, cf.functionName);
    areaSelf.set(ar, (areaSelf.get(ar) ?? 0) + t);
    // Inclusive time per function name (counted once per stack).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur)!.callFrame;
      if (!c.url.includes('/src/')) continue;
      const key = `${c.functionName || '(anonymous)'} ${c.url.replace(/^.*\/src\//, 'src/')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + t);
    }
  }
  const busy = total - (areaSelf.get('idle') ?? 0);
  const pct = (t: number, of: number): string => `${((100 * t) / of).toFixed(1).padStart(5)} %`;
  const lines: string[] = [`total ${(total / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s (percentages below are of busy time)`, '', 'self time by area:'];
  for (const [k, t] of [...areaSelf].filter(([k]) => k !== 'idle').sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(t, busy)}  ${k}`);
  lines.push('', 'self time by function:');
  for (const [k, t] of [...fnSelf].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(t, busy)}  ${k}`);
  lines.push('', 'inclusive time of jitgate functions:');
  for (const [k, t] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(t, busy)}  ${k}`);
  return lines.join('\n');
}

if (import.meta.filename === process.argv[1]) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } });
  for (const file of positionals) {
    process.stdout.write(`== ${file}\n${summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top))}\n\n`);
  }
}
