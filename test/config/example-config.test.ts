/**
 * config/jitgate.yaml is the reference operators copy from. These tests keep it equal to the schema: it
 * validates, it sets every key the schema knows (so every key is documented in place), every key line carries
 * a comment, each `default X` in a comment is the schema's real default, it contains the SPEC §8 contract keys,
 * and the README's configuration reference lists every key too.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { generateDevKeys } from '../../src/cli/keys.ts';
import { parseDuration } from '../../src/config/duration.ts';
import { parseConfigText, validateConfig } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';
import { Gate } from '../../src/gate.ts';
import { tempDir } from '../fixtures/keys.ts';

const EXAMPLE = fileURLToPath(new URL('../../config/jitgate.yaml', import.meta.url));
const DOCS = fileURLToPath(new URL('../../README.md', import.meta.url));

/** The keys SPEC §8 names as contract (operators and automation write them; none may be renamed). */
const SPEC_KEYS = [
  'listen.host', 'listen.port', 'upstream.url', 'service.audience', 'service.location',
  'issuers[].issuer', 'issuers[].jwks_file', 'issuers[].jwks_uri', 'issuers[].jwks_refresh', 'issuers[].jwks_max_stale',
  'issuers[].jwks_kid_cooldown', 'issuers[].algorithms', 'issuers[].max_ttl', 'issuers[].clock_tolerance', 'issuers[].typ',
  'grant.type', 'grant.actions', 'public[].methods', 'public[].path',
  'revocation.file', 'revocation.url', 'revocation.poll_interval', 'revocation.max_stale', 'revocation.journal',
  'headers.prefix', 'headers.forward_authorization', 'headers.method_override',
  'admin.listen.host', 'admin.listen.port', 'admin.token_file',
  'ext_authz.http.listen.host', 'ext_authz.http.listen.port', 'ext_authz.http.path_prefix', 'ext_authz.grpc.listen.host',
  'ext_authz.grpc.listen.port', 'ext_authz.forward_auth.path', 'ext_authz.forward_auth.trusted_proxies', 'workers',
];

interface SchemaKey {
  readonly path: string;
  /** The schema default as written in YAML terms (durations in ms), or undefined when the key has none. */
  readonly default: unknown;
  readonly isDuration: boolean;
}

// zod internals (`_zod.def`) are stable in v4 and the only way to enumerate a schema's keys.
type Def = { type: string; innerType?: Node; in?: Node; out?: Node; element?: Node; shape?: Record<string, Node>; defaultValue?: unknown };
type Node = { _zod: { def: Def } };

/** Every key path of the schema (`issuers[].max_ttl`), with its default. */
function schemaKeys(node: Node, path = '', out: SchemaKey[] = []): SchemaKey[] {
  const def = node._zod.def;
  if (def.type === 'array') return schemaKeys(def.element!, `${path}[]`, out);
  if (def.type !== 'object') return out;
  for (const [name, child] of Object.entries(def.shape!)) {
    const p = path === '' ? name : `${path}.${name}`;
    out.push({ path: p, default: defaultOf(child), isDuration: isDuration(child) });
    schemaKeys(unwrap(child), p, out);
  }
  return out;
}

/** Wrappers around a key's real type (`prefault` is a default applied before parsing). */
const WRAPPERS: ReadonlySet<string> = new Set(['default', 'prefault', 'optional', 'nullable']);

function unwrap(node: Node): Node {
  const def = node._zod.def;
  if (WRAPPERS.has(def.type)) return unwrap(def.innerType!);
  return node;
}

function defaultOf(node: Node): unknown {
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

function isDuration(node: Node): boolean {
  const def = unwrap(node)._zod.def;
  return def.type === 'pipe' && def.out?._zod.def.type === 'transform';
}

/** Key paths present in a parsed YAML value (lists merge their items: `issuers[].jwks_uri` if any item has it). */
function presentPaths(value: unknown, path = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    for (const item of value) presentPaths(item, `${path}[]`, out);
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const p = path === '' ? k : `${path}.${k}`;
      out.add(p);
      // grant.actions is a free-form map (action name → methods), not schema keys.
      if (p !== 'grant.actions') presentPaths(v, p, out);
    }
  }
  return out;
}

interface KeyLine {
  readonly line: number;
  readonly path: string;
  readonly comment: string | undefined;
  readonly commentAbove: boolean;
}

/**
 * Walks the YAML text by indentation: each `key:` line with its full path and trailing comment. A `- key:` line
 * opens a list item whose keys sit two columns further in; the item is its own stack level (`issuers[]`).
 */
function keyLines(text: string): KeyLine[] {
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

let text: string;
let parsed: unknown;
const keys = schemaKeys(configSchema as unknown as Node);

beforeAll(async () => {
  text = await readFile(EXAMPLE, 'utf8');
  parsed = parseYaml(text);
});

describe('config/jitgate.yaml', () => {
  it('passes validation (validateConfig) with the defaults it documents', () => {
    const config = validateConfig(parsed, EXAMPLE);
    expect(config.issuers).toHaveLength(2);
    expect(config.issuers[0]!.jwks_file).toBe(join(EXAMPLE, '..', 'jwks.json'));
    expect(config.issuers[1]!.jwks_uri).toBe('https://idp.example.com/.well-known/jwks.json');
  });

  it('sets every key the schema knows, so each is documented in place', () => {
    const present = presentPaths(parsed);
    const missing = keys.map((k) => k.path).filter((p) => !present.has(p));
    expect(missing).toEqual([]);
  });

  it('sets every SPEC §8 contract key, and the schema still has each of them', () => {
    const present = presentPaths(parsed);
    expect(SPEC_KEYS.filter((p) => !present.has(p))).toEqual([]);
    const known = new Set(keys.map((k) => k.path));
    expect(SPEC_KEYS.filter((p) => !known.has(p))).toEqual([]);
  });

  it('gives every key line a comment, on the line or just above', () => {
    const bare = keyLines(text).filter((k) => k.comment === undefined && !k.commentAbove);
    // Lines that only open a block of commented keys, and grant.actions entries (examples, not keys).
    const allowed = new Set(['admin.listen', 'ext_authz.http.listen', 'ext_authz.grpc.listen', 'grant.actions.write']);
    expect(bare.filter((k) => !allowed.has(k.path)).map((k) => `line ${k.line}: ${k.path}`)).toEqual([]);
  });

  it('states each default exactly as the schema has it', () => {
    const byPath = new Map(keys.map((k) => [k.path, k]));
    const checked: string[] = [];
    for (const line of keyLines(text)) {
      const m = line.comment === undefined ? null : /(?:^|; )default (.+?)(?:;|$)/.exec(line.comment);
      if (m === null) continue;
      const key = byPath.get(line.path);
      expect(key, `line ${line.line}: ${line.path} is not a schema key`).toBeDefined();
      const stated = m[1]!.replace(/\s*\(.*\)\s*$/, '').trim();
      const value = key!.isDuration ? parseDuration(stated) : stated === '""' ? '' : parseYaml(stated);
      expect(value, `line ${line.line}: ${line.path} documents default ${stated}`).toEqual(key!.default);
      checked.push(line.path);
    }
    // Every key with a scalar default must state it (objects with defaults are blocks, documented by their keys).
    const needing = keys.filter((k) => k.default !== undefined && (typeof k.default !== 'object' || Array.isArray(k.default)));
    expect(needing.map((k) => k.path).filter((p) => !checked.includes(p))).toEqual([]);
  });

  it('starts a gate once its files exist (issuer with jwks_file, revocation file)', async () => {
    const dir = await tempDir('jitgate-example-');
    await generateDevKeys(dir);
    await writeFile(join(dir, 'revoked.jsonl'), '{"jti":"example"}\n');
    const file = join(dir, 'jitgate.yaml');
    const config = parseConfigText(text, file);
    // Remote keys and the revocation url belong to their own tests; this checks the local parts compile and load.
    const local = { ...config, issuers: config.issuers.filter((i) => i.jwks_file !== undefined), revocation: { ...config.revocation, url: undefined } };
    const gate = new Gate(local, file);
    try {
      await gate.start();
      expect(gate.readiness()).toEqual({ ready: true, problems: [] });
    } finally {
      gate.stop();
    }
  });
});

describe('README configuration reference', () => {
  let docs: string;
  /** Feature docs (docs/*.md) may carry their own reference section for their keys, with the same markers. */
  let featureDocs: string[];
  beforeAll(async () => {
    docs = await readFile(DOCS, 'utf8');
    const dir = fileURLToPath(new URL('../../docs/', import.meta.url));
    featureDocs = await Promise.all((await readdir(dir)).filter((f) => f.endsWith('.md')).map((f) => readFile(join(dir, f), 'utf8')));
  });

  it('lists every schema key in its reference table', () => {
    // Only the reference section: other tables (metrics, flags) have code-formatted first columns too.
    const start = docs.indexOf('<!-- config-reference:start -->');
    expect(start).toBeGreaterThan(-1);
    const sectionOf = (text: string) => {
      const at = text.indexOf('<!-- config-reference:start -->');
      return at === -1 ? '' : text.slice(at, text.indexOf('<!-- config-reference:end -->', at));
    };
    const section = [docs, ...featureDocs].map(sectionOf).join('\n');
    const rows = new Set([...section.matchAll(/^\| `([a-z_.[\]]+)` \|/gm)].map((m) => m[1]!));
    expect(keys.map((k) => k.path).filter((p) => !rows.has(p))).toEqual([]);
    expect([...rows].filter((p) => !keys.some((k) => k.path === p))).toEqual([]);
  });
});
