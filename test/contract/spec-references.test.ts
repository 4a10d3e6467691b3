/**
 * The project owns its contract: docs/spec.md. Every "SPEC §n" cited anywhere in the repository names a section
 * heading there, and nothing in the repository points at files outside it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SKIP = new Set(['node_modules', '.git', 'dist', 'results', '.jitgate-demo']);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return files(p);
    return /\.(ts|js|md|ya?ml|json|conf|sh)$|Caddyfile$|Dockerfile$|\/run$/.test(p) ? [p] : [];
  });
}

const spec = readFileSync(join(root, 'docs', 'spec.md'), 'utf8');
const sections = new Set([...spec.matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? /gm)].map((m) => m[1]!));
const all = [...files(root), join(root, '.ci', 'run')].filter((f) => !f.endsWith('package-lock.json'));

describe('docs/spec.md', () => {
  it('numbers its sections 1 to 12', () => {
    for (let n = 1; n <= 12; n++) expect(sections.has(String(n)), `§${n}`).toBe(true);
  });

  it('has a heading for every "SPEC §n" cited in the repository', () => {
    const cited: string[] = [];
    const broken: string[] = [];
    for (const f of all) {
      const text = readFileSync(f, 'utf8');
      // "SPEC §3", "SPEC §7.1", and lists like "SPEC §1, §6" or "SPEC §9–12".
      for (const m of text.matchAll(/SPEC ((?:§\d+(?:\.\d+)?(?:\s*(?:,|and|–|-)\s*)?)+)/g)) {
        for (const ref of m[1]!.matchAll(/§?(\d+(?:\.\d+)?)/g)) {
          cited.push(ref[1]!);
          if (!sections.has(ref[1]!)) broken.push(`${relative(root, f)}: SPEC §${ref[1]}`);
        }
      }
    }
    expect(cited.length).toBeGreaterThan(100);
    expect(broken).toEqual([]);
  });

  it('is the only contract: nothing refers to files outside the repository', () => {
    const outside = all.filter((f) => /\.\.\/shared\b|shared\/SPEC\.md/.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f));
    expect(outside.filter((f) => f !== 'test/contract/spec-references.test.ts')).toEqual([]);
  });
});
