/**
 * docs/configuration.md, generated: every key of the config schema (src/config/schema.ts) with its type,
 * default and whether it is required, and its meaning as the annotated example config/jitgate.yaml states it
 * (that file is kept equal to the schema by test/config/example-config.test.ts).
 *
 *   node scripts/config-reference.ts --write   rewrite docs/configuration.md
 *   node scripts/config-reference.ts           print it
 *
 * test/config/configuration-doc.test.ts fails when the file and the schema drift apart.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { configSchema } from '../src/config/schema.ts';
import { parseDuration } from '../src/config/duration.ts';

export interface SchemaKey {
  readonly path: string;
  /** The schema default as written in YAML terms (durations in ms), or undefined when the key has none. */
  readonly default: unknown;
  readonly isDuration: boolean;
  readonly optional: boolean;
  readonly type: string;
}

// zod internals (`_zod.def`) are stable in v4 and the only way to enumerate a schema's keys.
type Def = {
  type: string;
  innerType?: Node;
  in?: Node;
  out?: Node;
  element?: Node;
  shape?: Record<string, Node>;
  defaultValue?: unknown;
  entries?: Record<string, string>;
  options?: Node[];
  values?: unknown[];
  valueType?: Node;
};
export type Node = { _zod: { def: Def } };

/** Wrappers around a key's real type (`prefault` is a default applied before parsing). */
const WRAPPERS: ReadonlySet<string> = new Set(['default', 'prefault', 'optional', 'nullable']);

export function unwrap(node: Node): Node {
  const def = node._zod.def;
  if (WRAPPERS.has(def.type)) return unwrap(def.innerType!);
  return node;
}

export function defaultOf(node: Node): unknown {
  const def = node._zod.def;
  if (def.type === 'default') return typeof def.defaultValue === 'function' ? (def.defaultValue as () => unknown)() : def.defaultValue;
  if (def.type === 'prefault') {
    // The input default: a duration still as text ("60s"); compare in milliseconds like `default`.
    const raw: unknown = typeof def.defaultValue === 'function' ? (def.defaultValue as () => unknown)() : def.defaultValue;
    return typeof raw === 'string' && isDuration(def.innerType!) ? parseDuration(raw) : raw;
  }
  if (def.type === 'optional' || def.type === 'nullable') return defaultOf(def.innerType!);
  return undefined;
}

export function isDuration(node: Node): boolean {
  const def = unwrap(node)._zod.def;
  return def.type === 'pipe' && def.out?._zod.def.type === 'transform';
}

function isOptional(node: Node): boolean {
  const t = node._zod.def.type;
  return WRAPPERS.has(t);
}

function typeOf(node: Node): string {
  if (isDuration(node)) return 'duration';
  const def = unwrap(node)._zod.def;
  switch (def.type) {
    case 'array':
      return `list of ${typeOf(def.element!)}`;
    case 'object':
      return 'map';
    case 'record':
      return 'map';
    case 'enum':
      return Object.values(def.entries ?? {}).map((v) => JSON.stringify(v)).join(' \\| ');
    case 'union':
      return (def.options ?? []).map(typeOf).join(' \\| ');
    case 'literal':
      return (def.values ?? []).map((v) => JSON.stringify(v)).join(' \\| ');
    case 'pipe':
      return typeOf(def.in!);
    default:
      return def.type;
  }
}

/** Every key path of the schema (`issuers[].max_ttl`), with its default. */
export function schemaKeys(node: Node = configSchema as unknown as Node, path = '', out: SchemaKey[] = []): SchemaKey[] {
  const def = unwrap(node)._zod.def;
  if (def.type === 'array') return schemaKeys(def.element!, `${path}[]`, out);
  if (def.type === 'pipe' && def.in !== undefined) return schemaKeys(def.in, path, out);
  if (def.type !== 'object') return out;
  for (const [name, child] of Object.entries(def.shape!)) {
    const p = path === '' ? name : `${path}.${name}`;
    out.push({ path: p, default: defaultOf(child), isDuration: isDuration(child), optional: isOptional(child), type: typeOf(child) });
    schemaKeys(child, p, out);
  }
  return out;
}

export interface KeyLine {
  readonly line: number;
  readonly path: string;
  readonly comment: string | undefined;
  readonly commentAbove: boolean;
}

/**
 * Walks the YAML text by indentation: each `key:` line with its full path and trailing comment. A `- key:` line
 * opens a list item whose keys sit two columns further in; the item is its own stack level (`issuers[]`).
 */
export function keyLines(text: string): KeyLine[] {
  const stack: { indent: number; path: string }[] = [];
  const out: KeyLine[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const m = /^(\s*)(- )?([a-z_]+):(.*)$/.exec(raw);
    if (m === null) return;
    const [, spaces, dash, key, rest] = m as unknown as [string, string, string | undefined, string, string];
    const pop = (indent: number) => {
      while (stack.length > 0 && stack.at(-1)!.indent >= indent) stack.pop();
    };
    pop(spaces.length);
    if (dash !== undefined) stack.push({ indent: spaces.length, path: `${stack.at(-1)?.path ?? ''}[]` });
    const indent = spaces.length + (dash === undefined ? 0 : 2);
    pop(indent);
    const parent = stack.at(-1)?.path ?? '';
    const path = parent === '' ? key : `${parent}.${key}`;
    stack.push({ indent, path });
    const hash = rest.indexOf(' #');
    out.push({
      line: i + 1,
      path,
      comment: hash === -1 ? undefined : rest.slice(hash + 2).trim(),
      commentAbove: /^\s*#/.test(lines[i - 1] ?? ''),
    });
  });
  return out;
}

/** The comment block right above line `n` (1-based), joined. */
function commentAbove(lines: readonly string[], n: number): string {
  const out: string[] = [];
  for (let i = n - 2; i >= 0 && /^\s*#/.test(lines[i]!); i--) out.unshift(lines[i]!.replace(/^\s*#\s?/, '').trim());
  return out.join(' ');
}

function formatDefault(k: SchemaKey): string {
  const d = k.default;
  if (d === undefined) return k.optional ? '' : '**required**';
  if (typeof d === 'object' && !Array.isArray(d)) return '';
  if (k.isDuration && typeof d === 'number') return `\`${formatMs(d)}\``;
  return `\`${JSON.stringify(d)}\``;
}

function formatMs(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) if (ms % size === 0 && ms >= size) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

const cell = (s: string): string => s.replaceAll('|', '\\|');

export const EXAMPLE_URL = new URL('../config/jitgate.yaml', import.meta.url);
export const DOC_URL = new URL('../docs/configuration.md', import.meta.url);

export function configurationDoc(exampleText: string): string {
  const lines = exampleText.split('\n');
  const meaning = new Map<string, string>();
  for (const k of keyLines(exampleText)) {
    if (meaning.has(k.path)) continue;
    const text = k.comment ?? (k.commentAbove ? commentAbove(lines, k.line) : '');
    if (text !== '') meaning.set(k.path, text);
  }
  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated by scripts/config-reference.ts from src/config/schema.ts and config/jitgate.yaml; do not edit.',
    '     Run `node scripts/config-reference.ts --write` after changing either. -->',
    '',
    'jitgate reads one YAML file (`jitgate serve -c FILE`; `jitgate check-config -c FILE` validates it without starting',
    'anything). Unknown keys are refused, so a typo never falls back to a default. Durations are strings with a unit',
    '(`500ms`, `2s`, `15m`, `1h`). Relative file paths resolve against the folder of the config file. The annotated',
    'example [`config/jitgate.yaml`](../config/jitgate.yaml) sets every key below; it names key, token and certificate',
    'files the repository does not ship, so it validates once those exist (`npm start` writes a working config to',
    '`.jitgate-demo/jitgate.yaml`).',
    '',
  ];
  let section = '';
  for (const k of schemaKeys()) {
    const top = k.path.split(/[.[]/)[0]!;
    if (top !== section) {
      if (section !== '') out.push('');
      section = top;
      out.push(`## \`${top}\``, '', '| key | type | default | meaning |', '|---|---|---|---|');
    }
    out.push(`| \`${k.path}\` | ${k.type} | ${formatDefault(k)} | ${cell(meaning.get(k.path) ?? '')} |`);
  }
  return `${out.join('\n')}\n`;
}

if (import.meta.main) {
  const doc = configurationDoc(await readFile(EXAMPLE_URL, 'utf8'));
  if (process.argv.includes('--write')) await writeFile(DOC_URL, doc);
  else process.stdout.write(doc);
}
