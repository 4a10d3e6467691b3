/**
 * `--perf`: Linux `perf record -e cpu-clock` on the serving process during each measured run.
 * It samples CPU time, not wall time, so on a box where autocannon, the upstream and the server
 * share two cores the profile shows what the server itself burned — V8's `--cpu-prof` samples wall
 * time and charges every moment the process sat descheduled to whatever frame it was in (usually
 * a socket write). Servers run with `--perf-basic-prof` so JIT frames have names; call graphs
 * (frame pointers) give inclusive time per jitgate function.
 *
 *   node bench/macro/perf.ts FILE.perf.data [--top 40]    summary of a recorded profile
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';

export const PERF_NODE_FLAGS: readonly string[] = ['--perf-basic-prof', '--interpreted-frames-native-stack'];

export function perfAvailable(): boolean {
  return spawnSync('perf', ['--version']).status === 0;
}

/** Starts sampling pid for `seconds`; await the result before reading the file. */
export function perfRecord(pid: number, seconds: number, file: string): Promise<void> {
  const proc = spawn('perf', ['record', '-q', '-g', '-e', 'cpu-clock', '-F', '997', '-p', String(pid), '-o', file, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
  return once(proc, 'exit').then(() => undefined);
}

/** Where a symbol belongs: jitgate folder, dependency, node internals, V8/libuv/OpenSSL native. */
export function areaOf(sym: string, dso: string): string {
  const m = /(?:file:\/\/)?\S*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(sym);
  if (m) return m[1]!;
  const src = /\/src\/([^:]+)\.ts:/.exec(sym);
  if (src) return `jitgate ${src[1]!.includes('/') ? src[1]!.split('/').slice(0, -1).join('/') : `${src[1]}.ts`}`;
  const bench = /\/bench\/macro\/([^:]+)\.ts:/.exec(sym);
  if (bench) return `bench ${bench[1]}`;
  const n = /node:(?:internal\/)?([a-z_]+)/.exec(sym);
  if (n) return `node:${n[1]}`;
  if (/^(?:Builtin|Bytecode|Stub|Handler):|^\S*Builtins_/.test(sym)) return 'V8 builtins';
  if (sym.startsWith('v8::internal::') || sym.startsWith('Builtins_')) return sym.includes('Scavenge') || sym.includes('Heap') || sym.includes('GC') || sym.includes('Mark') ? 'V8 GC' : 'V8';
  if (sym.startsWith('node::')) return 'node (C++)';
  if (sym.startsWith('uv_') || sym.startsWith('uv__')) return 'libuv';
  if (dso.includes('libcrypto') || dso.includes('libssl')) return 'OpenSSL';
  if (dso.includes('libc')) return 'libc';
  return dso === 'node' ? 'node binary (other)' : dso;
}

export function summarizePerf(file: string, top: number): string {
  const r = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '--sort', 'dso,sym', '--percent-limit', '0', '-q', '-F', 'overhead,dso,sym'], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  if (r.status !== 0) return `perf report failed: ${r.stderr}`;
  const areas = new Map<string, number>();
  const syms = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    // "  1.07%  [JIT] tid 14476      [.] JS:*'_resume /path/client.js:589:18" (the dso may hold spaces)
    const m = /^\s*([\d.]+)%\s+(.+?)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const pct = Number(m[1]);
    const sym = m[3]!.trim();
    const area = areaOf(sym, m[2]!);
    areas.set(area, (areas.get(area) ?? 0) + pct);
    // One line per function whatever its tier (~ interpreted, ^ baseline, + maglev, * turbofan).
    const name = sym.replace(/^JS:[~^+*]?'?/, 'JS ').replace(/(?:file:\/\/)?\S*\/(src|node_modules|bench)\//, '$1/');
    syms.set(name, (syms.get(name) ?? 0) + pct);
  }
  const out = ['CPU time (user space) by area:'];
  for (const [k, v] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${v.toFixed(1).padStart(5)} %  ${k}`);
  out.push('', 'by symbol:');
  for (const [k, v] of [...syms].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`  ${v.toFixed(1).padStart(5)} %  ${k.slice(0, 160)}`);
  return out.join('\n');
}

if (import.meta.filename === process.argv[1]) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' } } });
  for (const f of positionals) process.stdout.write(`== ${f}\n${summarizePerf(f, Number(values.top))}\n\n`);
}
