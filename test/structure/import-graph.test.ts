/**
 * The import graph of src/, measured: no file imports itself back through others (type-only
 * imports included: a circle of types still couples layers), and lower layers never reach up.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT = /^(?:import|export)\b[^;]*?\bfrom\s+['"](\.[^'"]+)['"]/gms;

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sourceFiles(src)) {
    const text = readFileSync(f, 'utf8');
    const deps = [...text.matchAll(IMPORT)].map((m) => relative(root, normalize(join(dirname(f), m[1]!))));
    g.set(relative(root, f), deps);
  }
  return g;
}

/** Strongly connected components of more than one file (Tarjan). */
function cycles(g: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) found.push(c.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('import graph of src/', () => {
  const g = graph();

  it('reads every source file and resolves every relative import to one of them', () => {
    expect(g.size).toBeGreaterThan(50);
    const unresolved = [...g].flatMap(([f, deps]) => deps.filter((d) => !g.has(d) && !d.endsWith('.json')).map((d) => `${f} → ${d}`));
    expect(unresolved).toEqual([]);
  });

  it('has no circle between files', () => {
    expect(cycles(g)).toEqual([]);
  });

  it('finds a circle when there is one (the check itself works)', () => {
    const c = cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]));
    expect(c).toEqual([['a', 'b', 'c']]);
  });

  it('keeps the CLI on top: nothing below it (demo, issuing, load generator, runtime) imports src/cli', () => {
    const up = [...g].filter(([f]) => !f.startsWith('src/cli/')).flatMap(([f, deps]) => deps.filter((d) => d.startsWith('src/cli/')).map((d) => `${f} → ${d}`));
    expect(up).toEqual([]);
  });

  it('keeps the pure core free of I/O layers', () => {
    const up = [...g].filter(([f]) => f.startsWith('src/core/')).flatMap(([f, deps]) => deps.filter((d) => /^src\/(transports|admin|cli|demo|observability|config)\//.test(d)).map((d) => `${f} → ${d}`));
    expect(up).toEqual([]);
  });

  it('loads Redis, gRPC and OpenTelemetry only when configured: `serve` reaches none of them through static imports', () => {
    // Value imports only (`import type` is erased); `await import()` is how the configured features load them.
    const VALUE = /^(?:import|export)(?!\s+type\b)[^;]*?\bfrom\s+['"]([^'"]+)['"]|^import\s+['"]([^'"]+)['"]/gm;
    const seen = new Set<string>();
    const packages = new Map<string, string>();
    const walk = (f: string): void => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const m of readFileSync(join(root, f), 'utf8').matchAll(VALUE)) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith('.')) walk(relative(root, normalize(join(dirname(join(root, f)), spec))));
        else if (!spec.startsWith('node:')) packages.set(spec, f);
      }
    };
    walk('src/cli/serve.ts');
    expect(seen.size).toBeGreaterThan(50);
    expect(packages.has('undici') && packages.has('jose')).toBe(true);
    const heavy = [...packages].filter(([p]) => /^(redis|@redis\/|@grpc\/|@opentelemetry\/)/.test(p)).map(([p, f]) => `${f} → ${p}`);
    expect(heavy).toEqual([]);
  });
});
