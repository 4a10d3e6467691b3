/**
 * `--perf`: Linux `perf record -e cpu-clock` on the serving process during each measured run.
 * It samples CPU time, not wall time, so on a box where autocannon, the upstream and the server
 * share two cores the profile shows what the server itself burned — V8's `--cpu-prof` samples wall
 * time and charges every moment the process sat descheduled to whatever frame it was in (usually
 * a socket write). Call graphs (frame pointers) give inclusive time per jitgate function.
 *
 * JIT frames are named from V8's jitdump (`--perf-prof`) through `perf inject --jit`, which knows
 * when each piece of code lived. The simpler `--perf-basic-prof` map does not: once V8 frees code
 * and reuses its address, samples of the new code get the old name (a profile showed
 * `hasDuplicateKeys` "calling" a socket write and an eval'd one-liner "calling" undici's parser).
 *
 *   node bench/macro/perf.ts FILE.perf.data [--top 40]    summary of a recorded profile
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * perf copies every file a command touches into its build-id cache (~/.debug): the node binary on
 * record, and on `perf inject --jit` thousands of small ELF files per row (hundreds of MB). A cache
 * directory below a plain file cannot be created, so perf goes without one and reads files where
 * they are.
 */
export function noBuildIdCache(): string[] {
  const blocker = join(tmpdir(), 'jitgate-perf-no-buildid-cache');
  if (!existsSync(blocker)) writeFileSync(blocker, 'perf --buildid-dir points below this file so that perf keeps no cache\n');
  return ['--buildid-dir', join(blocker, 'cache')];
}

/** Node flags for a server to be profiled: a jitdump per process (and V8's log, which it implies) in `jitDir`. */
export function perfNodeFlags(jitDir: string): string[] {
  return ['--perf-prof', `--perf-prof-path=${jitDir}`, `--logfile=${join(jitDir, 'v8.log')}`, '--interpreted-frames-native-stack'];
}

export function perfAvailable(): boolean {
  return spawnSync('perf', ['--version']).status === 0;
}

/** Starts sampling pid for `seconds`; await the result before reading the file. */
export function perfRecord(pid: number, seconds: number, file: string): Promise<void> {
  // -k 1: the monotonic clock jitdump timestamps use, so `perf inject --jit` can match them.
  const proc = spawn('perf', [...noBuildIdCache(), 'record', '-q', '-N', '-k', '1', '-g', '-e', 'cpu-clock', '-F', '997', '-p', String(pid), '-o', file, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
  return once(proc, 'exit').then(() => undefined);
}

/**
 * `perf inject --jit`: a copy of the recording whose JIT samples point at one small ELF file per
 * compiled function (written beside the jitdump), so `perf report`/`perf script` name them right.
 * Returns the new file, or the original when there is nothing to inject or inject fails.
 */
export function injectJit(file: string): string {
  if (file.endsWith('.jit.perf.data') || !file.endsWith('.perf.data')) return file;
  const out = file.replace(/\.perf\.data$/, '.jit.perf.data');
  const r = spawnSync('perf', [...noBuildIdCache(), 'inject', '--jit', '-i', file, '-o', out], { stdio: 'ignore' });
  return r.status === 0 ? out : file;
}

/**
 * Removes what `injectJit` made: the named copy and the per-function ELF files beside the jitdumps.
 * The next row of the same process injects again (and would rewrite those files under the older
 * copy's feet); the raw recording and the jitdumps stay, so `perf.ts`/`flamegraph.ts` can redo it.
 */
export async function dropInjected(named: string, jitDir: string): Promise<void> {
  if (named.endsWith('.jit.perf.data')) await rm(named, { force: true });
  const files = await readdir(jitDir).catch(() => [] as string[]);
  await Promise.all(files.filter((f) => /^jitted-\d+-\d+\.so$/.test(f)).map((f) => rm(join(jitDir, f), { force: true })));
}

/** OpenSSL's own functions (the node binary links OpenSSL statically, so the file does not tell). */
export const OPENSSL_SYMBOL = /^_{0,2}(?:ecp_|EVP_|BN_|bn_|ossl_|EC_|ec_|ECDSA|ecdsa|SHA\d|sha\d|ASN1|OPENSSL|CRYPTO_|x25519|ed25519|RSA_|rsa_)/;

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
  if (dso.includes('libcrypto') || dso.includes('libssl') || OPENSSL_SYMBOL.test(sym)) return 'OpenSSL';
  if (dso.includes('libc')) return 'libc';
  return dso === 'node' ? 'node binary (other)' : dso;
}

export function summarizePerf(file: string, top: number): string {
  const r = spawnSync('perf', [...noBuildIdCache(), 'report', '-i', file, '--stdio', '--no-children', '--sort', 'dso,sym', '--percent-limit', '0', '-q', '-F', 'overhead,dso,sym'], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
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
  for (const f of positionals) process.stdout.write(`== ${f}\n${summarizePerf(injectJit(f), Number(values.top))}\n\n`);
}
