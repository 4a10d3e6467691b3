/**
 * `jitgate bench`'s flags → the settings of a run, every one checked before anything is minted or sent: a value
 * the run could only fail on (a path the gate would read differently, an `--outside-path` the grant covers, a header
 * undici refuses on every request, an output file that cannot be written) is a usage error naming the flag, not a
 * run of unexpected answers.
 *
 * @module
 */
import { access, constants, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseDuration, TIMER_MAX_MS } from '../config/duration.ts';
import { compilePattern, matchPattern, type PathPattern } from '../core/path-pattern.ts';
import { parseTarget } from '../core/request-target.ts';
import { FIELD_VALUE_CONTROL, HTTP_TOKEN } from '../net/http-syntax.ts';
import { parseMix, type MixPart } from './mix.ts';
import type { RunInfo } from './report.ts';
import { grantPaths } from './grant-paths.ts';
import type { GrantShape } from './requests.ts';

/** The flags as parsed (strings; `header` repeatable). */
export interface BenchFlags {
  readonly target?: string;
  readonly key?: string;
  readonly ca?: string;
  readonly iss?: string;
  readonly aud?: string;
  readonly sub?: string;
  readonly action?: string;
  readonly path?: string;
  readonly 'outside-path'?: string;
  readonly tokens?: string;
  readonly ttl?: string;
  readonly mix?: string;
  readonly duration?: string;
  readonly connections?: string;
  readonly rate?: string;
  readonly timeout?: string;
  readonly header?: readonly string[];
  readonly json?: string;
  readonly markdown?: string;
}

export interface BenchSettings {
  readonly target: URL;
  readonly keyFile: string;
  readonly caFile: string | undefined;
  readonly mix: readonly MixPart[];
  readonly durationMs: number;
  readonly timeoutMs: number;
  readonly tokens: number;
  readonly info: RunInfo;
  readonly json: string | undefined;
  readonly markdown: string | undefined;
  /** The tokens' grant and the requests' shape; the key is read later (a file problem is not a usage error). */
  readonly grant: Omit<GrantShape, 'key'>;
}

/** Each connection is a socket, a file descriptor: past this a run measures the load generator's limits. */
export const MAX_CONNECTIONS = 10_000;
/** Tokens are minted one by one before the load (about 0.4 ms each here): a million takes minutes already. */
export const MAX_TOKENS = 1_000_000;

const DEFAULT_OUTSIDE_PATH = '/jitgate-bench-outside';

function required(v: string | undefined, flag: string): string {
  if (v === undefined || v === '') throw new Error(`${flag} is required`);
  return v;
}

function wholeNumber(v: string | undefined, flag: string, def: number, max: number): number {
  if (v === undefined) return def;
  // Digits only: Number() would also take `1e1`, `0x10` and ` 10 `.
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${flag}: expected a whole number above 0, got ${JSON.stringify(v)}`);
  if (n > max) throw new Error(`${flag}: at most ${max}, got ${v}`);
  return n;
}

function duration(v: string | undefined, flag: string, def: number): number {
  if (v === undefined) return def;
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0 || ms > TIMER_MAX_MS) throw new Error(`${flag}: expected a duration like 10s (at most 24d), got ${JSON.stringify(v)}`);
  return ms;
}

function targetUrl(v: string | undefined): URL {
  const text = required(v, '--target');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`--target: expected a URL such as http://127.0.0.1:8080, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`--target: expected an http:// or https:// URL, got ${JSON.stringify(text)}`);
  // Requests go to --path on the target's origin: a path or query here would be silently dropped.
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new Error(`--target: give the origin only (${url.protocol}//${url.host}); requests go to --path and --outside-path`);
  }
  return url;
}

/** The gate's own rule for an action it maps to a method (src/core/grant.ts). */
const METHOD = /^[A-Z][A-Z0-9_-]*$/;

function action(v: string | undefined): string {
  const method = (v ?? 'GET').toUpperCase();
  if (!HTTP_TOKEN.test(method) || !METHOD.test(method)) throw new Error(`--action: expected an HTTP method such as GET or POST, got ${JSON.stringify(v)}`);
  if (method === 'CONNECT') throw new Error('--action: CONNECT is never granted; every gate answers it 400');
  return method;
}

/** Set by the bench itself, or about the connection and its framing, which undici owns: refused in --header. */
const RESERVED_HEADERS = new Set(['authorization', 'connection', 'content-length', 'expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function headers(list: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list ?? []) {
    const colon = h.indexOf(':');
    const name = colon < 1 ? '' : h.slice(0, colon).trim().toLowerCase();
    const value = h.slice(colon + 1).trim();
    if (!HTTP_TOKEN.test(name)) throw new Error(`--header: expected 'Name: value', got ${JSON.stringify(h)}`);
    // A control character (a CR/LF header injection among them) would fail every request in undici.
    if (FIELD_VALUE_CONTROL.test(value)) throw new Error(`--header ${name}: the value holds a control character`);
    if (RESERVED_HEADERS.has(name)) throw new Error(`--header ${name}: set by the bench itself or by the HTTP client; it cannot be given`);
    if (name in out) throw new Error(`--header ${name}: given twice`);
    out[name] = value;
  }
  return out;
}

/**
 * A path every gate reads as written: absolute, no query or fragment, and already in the canonical form the gate
 * judges (no `//`, `.` or `..` segments, no needless percent-encoding). Any other form is judged, and forwarded, as
 * something else, so the run would report answers for a path that was not the one asked for.
 */
function canonicalPath(v: string, flag: string): readonly string[] {
  const parsed = parseTarget(v);
  if (!parsed.ok) throw new Error(`${flag}: ${JSON.stringify(v)} is not a path a gate accepts (${parsed.reason})`);
  if (parsed.target.query !== '') throw new Error(`${flag}: give a path without a query, got ${JSON.stringify(v)}`);
  if (parsed.target.path !== v) throw new Error(`${flag}: ${JSON.stringify(v)} is read by a gate as ${JSON.stringify(parsed.target.path)}; give that`);
  return parsed.target.segments;
}

/** The grant's patterns for `--path`: one a gate refuses would make it refuse every token of the run (invalid_grant). */
function grantPatterns(path: string): PathPattern[] {
  return grantPaths(path).map((source) => {
    const pattern = compilePattern(source);
    if (pattern === null) {
      throw new Error(`--path: ${JSON.stringify(path)} does not make a grant path pattern a gate accepts (${JSON.stringify(source)}; SPEC §1: "*" and "**" only as whole segments, "**" only last); every token would be refused`);
    }
    return pattern;
  });
}

/** `--outside-path` must lie outside the grant the tokens carry, as the gate's own matcher reads it. */
function outsideTheGrant(patterns: readonly PathPattern[], path: string, outsidePath: string, outsideSegments: readonly string[]): void {
  for (const pattern of patterns) {
    if (matchPattern(pattern, outsideSegments)) {
      throw new Error(`--outside-path ${outsidePath} is inside the grant of --path ${path} (which covers it and everything below it): give a --path such as /api and an --outside-path outside it`);
    }
  }
}

/** The output file can be written: said now, not after the whole run. */
async function writable(file: string | undefined, flag: string): Promise<string | undefined> {
  if (file === undefined) return undefined;
  const info = await stat(file).catch(() => undefined);
  if (info?.isDirectory() === true) throw new Error(`${flag} ${file}: is a directory`);
  try {
    await access(info === undefined ? dirname(file) : file, constants.W_OK);
  } catch (err) {
    throw new Error(`${flag} ${file}: cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  return file;
}

/** @throws Error with a message naming the flag (a usage error). */
export async function benchSettings(v: BenchFlags): Promise<BenchSettings> {
  const target = targetUrl(v.target);
  const mixText = v.mix ?? 'allow=100';
  const mix = parseMix(mixText);
  const durationMs = duration(v.duration, '--duration', 10_000);
  const connections = wholeNumber(v.connections, '--connections', 10, MAX_CONNECTIONS);
  const rate = v.rate === undefined ? undefined : wholeNumber(v.rate, '--rate', 1, Number.MAX_SAFE_INTEGER);
  const tokens = wholeNumber(v.tokens, '--tokens', 100, MAX_TOKENS);
  const path = v.path ?? '/';
  canonicalPath(path, '--path');
  const outsidePath = v['outside-path'] ?? DEFAULT_OUTSIDE_PATH;
  const outsideSegments = canonicalPath(outsidePath, '--outside-path');
  const patterns = grantPatterns(path);
  if (mix.some((p) => p.kind === 'outside')) outsideTheGrant(patterns, path, outsidePath, outsideSegments);
  if (v.ca !== undefined && target.protocol !== 'https:') throw new Error('--ca: only for an https:// --target');
  const info: RunInfo = { target: target.origin, connections, durationSec: durationMs / 1000, rate, tokens, mix: mixText, kinds: mix.map((p) => p.kind) };
  return {
    target,
    keyFile: required(v.key, '--key'),
    caFile: v.ca,
    mix,
    durationMs,
    timeoutMs: duration(v.timeout, '--timeout', 10_000),
    tokens,
    info,
    json: await writable(v.json, '--json'),
    markdown: await writable(v.markdown, '--markdown'),
    grant: {
      iss: required(v.iss, '--iss'),
      aud: required(v.aud, '--aud'),
      sub: v.sub ?? 'spiffe://jitgate-bench/load',
      action: action(v.action),
      path,
      outsidePath,
      ttlSeconds: Math.round(duration(v.ttl, '--ttl', 600_000) / 1000),
      headers: headers(v.header),
    },
  };
}
