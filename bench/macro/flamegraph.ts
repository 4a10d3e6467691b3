/**
 * Flame graphs of the bench's profiles, as self-contained SVG files a browser opens (hover a frame
 * for its name and share). Two sources:
 *   - `perf record -g` data (`--perf`): CPU time of every thread of the serving process, one tower
 *     per thread (MainThread = the event loop, libuv-worker = the thread pool, V8Worker = JIT and GC
 *     helpers), kernel frames included;
 *   - V8 `.cpuprofile` (`--profile`): the JS thread only, wall time (descheduled time is charged to
 *     the frame that was running; see bench/README.md "Where the time goes").
 * Stacks are folded into "root;…;leaf → weight" first (the format Brendan Gregg's flamegraph.pl
 * reads), so other tools can take them too.
 *
 *   node bench/macro/flamegraph.ts FILE.perf.data|FILE.cpuprofile [...] [--folded]
 *     writes FILE.svg beside each input (and FILE.folded with --folded); perf data gets its JIT
 *     names from `perf inject --jit` first (see perf.ts)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { injectJit, noBuildIdCache, OPENSSL_SYMBOL } from './perf.ts';
import type { Profile as CpuProfile } from './profile.ts';

export type { CpuProfile };

/** Stack text (frames root first, joined by ';') → weight (samples or µs). */
export type Folded = Map<string, number>;

/** A frame's display name: file URLs shortened to the package or jitgate folder, JIT tier marks dropped. */
export function frameName(sym: string): string {
  return sym
    .replace(/^JS:[~^+*]?'?/, 'JS ')
    .replace(/(?:file:\/\/)?\S*\/(src|node_modules|bench)\//g, '$1/')
    .replace(/;/g, ',');
}

/**
 * Folds `perf script -F comm,tid,ip,sym,dso` output: a header line per sample (thread name and
 * id), its frames leaf first, a blank line. The thread name becomes the root frame, with thread
 * ids dropped so that the pool's threads share one tower.
 */
export function foldPerfScript(text: string): Folded {
  const folded: Folded = new Map();
  let thread: string | undefined;
  let frames: string[] = [];
  const flush = (): void => {
    if (thread !== undefined) {
      const key = [thread, ...frames.reverse()].join(';');
      folded.set(key, (folded.get(key) ?? 0) + 1);
    }
    thread = undefined;
    frames = [];
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (!line.startsWith('\t') && !line.startsWith(' ')) {
      flush();
      // "MainThread  4944 " or "libuv-worker 4950": the name may contain spaces, the tid is last.
      thread = line.trim().replace(/\s+\d+$/, '').replace(/;/g, ',') || '(unnamed thread)';
      continue;
    }
    // "\t  249782d v8::internal::Foo (/path/node)" or "\t ffffffff813a2313 finish_task_switch ([kernel.kallsyms])"
    const m = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(line);
    if (!m) continue;
    const sym = m[1]!;
    const dso = m[2]!;
    const name = sym === '[unknown]' ? `[unknown] (${dso.replace(/^.*\//, '')})` : frameName(sym);
    frames.push(dso === '[kernel.kallsyms]' ? `${name} [k]` : name);
  }
  flush();
  return folded;
}

/** Folds a V8 `.cpuprofile`, weighted by time (µs); idle samples are left out. */
export function foldCpuProfile(p: CpuProfile): Folded {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackOf = new Map<number, string | null>();
  const stack = (id: number): string | null => {
    let s = stackOf.get(id);
    if (s !== undefined) return s;
    const names: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      if (cf.functionName === '(root)') continue;
      const loc = cf.url === '' ? '' : ` ${frameName(cf.url)}:${cf.lineNumber + 1}`;
      names.push(`${cf.functionName || '(anonymous)'}${loc}`.replace(/;/g, ','));
    }
    s = names.length === 0 || names[0] === '(idle)' ? null : names.reverse().join(';');
    stackOf.set(id, s);
    return s;
  };
  const folded: Folded = new Map();
  p.samples.forEach((id, i) => {
    const s = stack(id);
    if (s === null) return;
    folded.set(s, (folded.get(s) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  return folded;
}

export function foldedText(folded: Folded): string {
  return [...folded].map(([k, v]) => `${k} ${v}`).join('\n') + '\n';
}

interface Node {
  readonly name: string;
  total: number;
  readonly children: Map<string, Node>;
}

function treeOf(folded: Folded): Node {
  const root: Node = { name: 'all', total: 0, children: new Map() };
  for (const [stack, w] of folded) {
    if (!(w > 0)) continue;
    root.total += w;
    let node = root;
    for (const name of stack.split(';')) {
      let child = node.children.get(name);
      if (child === undefined) node.children.set(name, (child = { name, total: 0, children: new Map() }));
      child.total += w;
      node = child;
    }
  }
  return root;
}

/** Green for jitgate, aqua for dependencies, yellow for Node's JS, orange for V8, purple for OpenSSL, grey for the kernel. */
export function hueOf(name: string): number {
  if (name.endsWith(' [k]')) return 0;
  if (/\bsrc\/|\bbench\//.test(name)) return 110;
  if (name.includes('node_modules/')) return 185;
  if (/^(?:node::|uv_|uv__|non-virtual thunk to node::|llhttp)/.test(name)) return 15;
  if (name.includes('node:')) return 55;
  if (OPENSSL_SYMBOL.test(name)) return 290;
  return 35; // V8, builtins, libc, unknown
}

function colorOf(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  const hue = hueOf(name);
  return hue === 0 ? `hsl(0,0%,${70 + (h % 12)}%)` : `hsl(${hue + (h % 16) - 8},65%,${58 + (h % 10)}%)`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface FlameOptions {
  readonly title: string;
  /** What a unit of weight is, for the tooltips: "samples" or "µs". */
  readonly unit: string;
  readonly width?: number;
  /** Frames narrower than this share of the whole are left out (keeps the file small). */
  readonly minShare?: number;
  /** The first level under the root names threads (perf): drawn neutral. */
  readonly threadRoots?: boolean;
}

/** A flame graph (root at the bottom, children sorted by name so two graphs line up). */
export function flameGraphSvg(folded: Folded, o: FlameOptions): string {
  const width = o.width ?? 1200;
  const minShare = o.minShare ?? 0.0005;
  const rowH = 16;
  const pad = 10;
  const root = treeOf(folded);
  const total = root.total;
  let depth = 0;
  const rects: { x: number; level: number; w: number; node: Node }[] = [];
  const walk = (node: Node, x: number, level: number): void => {
    const w = total === 0 ? 0 : (node.total / total) * (width - 2 * pad);
    rects.push({ x, level, w, node });
    depth = Math.max(depth, level);
    let cx = x;
    for (const child of [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (child.total / total >= minShare) walk(child, cx, level + 1);
      cx += total === 0 ? 0 : (child.total / total) * (width - 2 * pad);
    }
  };
  walk(root, pad, 0);
  const height = (depth + 1) * rowH + 60;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fbfbf8"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`,
    `<text x="${pad}" y="38" fill="#555">${esc(`${Math.round(total).toLocaleString('en-US')} ${o.unit}; width = share of all; hover a frame for its name and share; frames under ${(minShare * 100).toFixed(2)} % left out`)}</text>`,
  ];
  for (const r of rects) {
    const y = height - 10 - (r.level + 1) * rowH;
    const share = total === 0 ? 0 : (100 * r.node.total) / total;
    const label = `${r.node.name} (${share.toFixed(2)} %, ${Math.round(r.node.total).toLocaleString('en-US')} ${o.unit})`;
    const chars = Math.floor((r.w - 4) / 6.6);
    const text = chars < 3 ? '' : r.node.name.length <= chars ? r.node.name : `${r.node.name.slice(0, chars - 2)}..`;
    out.push(
      `<g><title>${esc(label)}</title><rect x="${r.x.toFixed(1)}" y="${y}" width="${Math.max(0.1, r.w - 0.5).toFixed(1)}" height="${rowH - 1}" fill="${r.level <= (o.threadRoots ? 1 : 0) ? '#d6dbe4' : colorOf(r.node.name)}" rx="2"/>` +
        (text === '' ? '' : `<text x="${(r.x + 3).toFixed(1)}" y="${y + 11}">${esc(text)}</text>`) +
        '</g>',
    );
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Folds one profile file (perf data through `perf script`, or a .cpuprofile). */
export function foldFile(file: string): { folded: Folded; unit: string; threadRoots: boolean } {
  if (file.endsWith('.cpuprofile')) return { folded: foldCpuProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile), unit: 'µs (wall)', threadRoots: false };
  const r = spawnSync('perf', [...noBuildIdCache(), 'script', '-i', file, '-F', 'comm,tid,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1024 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`perf script failed for ${file}: ${r.stderr}`);
  return { folded: foldPerfScript(r.stdout), unit: 'samples (CPU time, ~1 ms each)', threadRoots: true };
}

/** Writes the SVG (by default FILE.svg beside the profile, and FILE.folded with `withFolded`); returns its path. */
export function writeFlameGraph(file: string, title: string, svg = `${file.replace(/\.(perf\.data|cpuprofile)$/, '')}.svg`, withFolded = false): string {
  const { folded, unit, threadRoots } = foldFile(file);
  if (withFolded) writeFileSync(svg.replace(/\.svg$/, '.folded'), foldedText(folded));
  writeFileSync(svg, flameGraphSvg(folded, { title, unit, threadRoots }));
  return svg;
}

if (import.meta.filename === process.argv[1]) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { folded: { type: 'boolean', default: false } } });
  for (const f of positionals) {
    const named = f.endsWith('.perf.data') ? injectJit(f) : f;
    process.stdout.write(`${writeFlameGraph(named, f.replace(/^.*\//, ''), `${f.replace(/\.(perf\.data|cpuprofile)$/, '')}.svg`, values.folded)}\n`);
  }
}
