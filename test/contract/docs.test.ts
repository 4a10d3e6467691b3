/**
 * The README is a front door, not the reference: small, the two commands first, and every link in it and in docs/
 * leads to a file that exists.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(root, 'docs', f));

describe('README.md', () => {
  it('is at most 15 KB', () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(15 * 1024);
  });

  it('shows npm install, npm start and npm test in its first section after the introduction', () => {
    const first = readme.slice(readme.indexOf('\n## '), readme.indexOf('\n## ', readme.indexOf('\n## ') + 4));
    const install = first.indexOf('npm install\n');
    const start = first.indexOf('npm start');
    const test = first.indexOf('npm test');
    expect(install).toBeGreaterThan(-1);
    expect(start).toBeGreaterThan(install);
    expect(test).toBeGreaterThan(start);
  });
});

describe('links', () => {
  it.each([join(root, 'README.md'), join(root, 'SECURITY.md'), ...docs])('every relative link in %s resolves', (file) => {
    const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.split('#')[0]!;
      if (target === '' || /^[a-z]+:/.test(target)) continue;
      if (!existsSync(resolve(dirname(file), decodeURI(target)))) broken.push(m[1]!);
    }
    expect(broken).toEqual([]);
  });
});

describe('the image, as the docs describe it', () => {
  it('every ENTRYPOINT the docs quote is the Dockerfile’s (a review found one without --disable-sigusr1)', () => {
    const entry = /ENTRYPOINT \[[^\]]*\]/.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'))![0];
    const quoted = docs.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/ENTRYPOINT \[[^\]]*\]/g)].map((m) => m[0]));
    expect(quoted.length).toBeGreaterThan(0);
    expect(quoted.filter((q) => q !== entry)).toEqual([]);
  });
});
