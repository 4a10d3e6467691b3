/**
 * config/jitgate.yaml is the reference operators copy from. These tests keep it equal to the schema: it
 * validates, it sets every key the schema knows (so every key is documented in place), every key line carries
 * a comment, each `default X` in a comment is the schema's real default, it contains the SPEC §8 contract keys,
 * and docs/configuration.md, generated from the schema and this file, is current.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { generateDevKeys } from '../../src/issuing/dev-keys.ts';
import { parseDuration } from '../../src/config/duration.ts';
import { parseConfigText, validateConfig } from '../../src/config/load.ts';
import { configurationDoc, DOC_URL, keyLines, schemaKeys } from '../../scripts/config-reference.ts';
import { Gate } from '../../src/gate.ts';
import { tempDir } from '../fixtures/keys.ts';

const EXAMPLE = fileURLToPath(new URL('../../config/jitgate.yaml', import.meta.url));

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

let text: string;
let parsed: unknown;
const keys = schemaKeys();

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

describe('docs/configuration.md', () => {
  it('is what scripts/config-reference.ts generates from the schema and this file (run it with --write)', async () => {
    const doc = await readFile(DOC_URL, 'utf8');
    expect(doc).toBe(configurationDoc(text));
  });

  it('has a row for every schema key and none for a key the schema lacks', async () => {
    const doc = await readFile(DOC_URL, 'utf8');
    const rows = new Set([...doc.matchAll(/^\| `([a-z_.[\]]+)` \|/gm)].map((m) => m[1]!));
    expect(keys.map((k) => k.path).filter((p) => !rows.has(p))).toEqual([]);
    expect([...rows].filter((p) => !keys.some((k) => k.path === p))).toEqual([]);
    expect(rows.size).toBeGreaterThan(60);
  });
});
