/**
 * `authorization_details` (RFC 9396) → compiled grant entries (SPEC §1). Compiled once per
 * token on a cache miss; matching on the hot path is set lookups and array compares.
 */
import { BoundedMemo } from '../cache/bounded-memo.ts';
import { compilePattern, matchPattern, type PathPattern } from './path-pattern.ts';

export interface CompiledGrantEntry {
  /** Position in the token's authorization_details, for the audit line. */
  readonly index: number;
  readonly methods: ReadonlySet<string>;
  readonly patterns: readonly PathPattern[];
}

export interface GrantPolicy {
  /** Only entries whose `type` equals this count (default `jit_grant`). */
  readonly type: string;
  /** Action name → methods, e.g. read → [GET, HEAD]. */
  readonly actions: ReadonlyMap<string, readonly string[]>;
  /** `service.location`: entries with `locations` count only when it is listed. */
  readonly location: string | undefined;
}

const METHOD = /^[A-Z][A-Z0-9_-]*$/;

/**
 * The counting entries, or null when any counting entry is malformed (then the whole token is
 * invalid). Entries of other types are ignored unread: RFC 9396 lets each type define its shape.
 */
export function compileGrants(details: unknown, policy: GrantPolicy): CompiledGrantEntry[] | null {
  if (!Array.isArray(details)) return null;
  const out: CompiledGrantEntry[] = [];
  for (let i = 0; i < details.length; i++) {
    const entry: unknown = details[i];
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return null;
    const e = entry as Record<string, unknown>;
    if (typeof e.type !== 'string') return null;
    if (e.type !== policy.type) continue;

    const methods = compileActions(e.actions, policy);
    if (methods === null) return null;
    const patterns = compilePaths(e.paths);
    if (patterns === null) return null;

    if (e.locations !== undefined) {
      if (!Array.isArray(e.locations) || !e.locations.every((l) => typeof l === 'string')) return null;
      if (policy.location === undefined || !e.locations.includes(policy.location)) continue;
    }
    out.push(Object.freeze({ index: i, methods, patterns }));
  }
  return out;
}

function compileActions(actions: unknown, policy: GrantPolicy): Set<string> | null {
  if (!Array.isArray(actions) || actions.length === 0) return null;
  const methods = new Set<string>();
  for (const a of actions) {
    if (typeof a !== 'string' || a === '') return null;
    const mapped = policy.actions.get(a);
    if (mapped !== undefined) for (const m of mapped) methods.add(m);
    else if (METHOD.test(a)) methods.add(a);
    // An action name the config does not map grants nothing; HEAD is never implied by GET.
  }
  return methods;
}

/**
 * Patterns compiled before, by source. An issuer writes the same few patterns into many tokens, and a
 * compiled pattern is frozen, so tokens share it; compiling one again (parseTarget and the split) was
 * most of compileGrants on a cache miss. Bounded: emptied when full, so a stream of distinct patterns
 * costs what it did without the memo.
 */
const compiledPatterns = new BoundedMemo<string, PathPattern | null>(1024);

function patternOf(source: string): PathPattern | null {
  const compiled = compiledPatterns.get(source);
  return compiled === undefined ? compiledPatterns.set(source, compilePattern(source)) : compiled;
}

function compilePaths(paths: unknown): PathPattern[] | null {
  if (!Array.isArray(paths) || paths.length === 0) return null;
  const out: PathPattern[] = [];
  for (const p of paths) {
    if (typeof p !== 'string') return null;
    const compiled = patternOf(p);
    if (compiled === null) return null;
    out.push(compiled);
  }
  return out;
}

export type GrantRefusal = 'no_grant' | 'method_not_granted' | 'path_not_granted';

/** Index of the first entry (alternatives, SPEC §1) that allows method + path, or why none does. */
export function matchGrants(entries: readonly CompiledGrantEntry[], method: string, segments: readonly string[]): number | GrantRefusal {
  if (entries.length === 0) return 'no_grant';
  let pathSeen = false;
  for (const entry of entries) {
    let pathOk = false;
    for (const p of entry.patterns) {
      if (matchPattern(p, segments)) {
        pathOk = true;
        break;
      }
    }
    if (!pathOk) continue;
    if (entry.methods.has(method)) return entry.index;
    pathSeen = true;
  }
  return pathSeen ? 'method_not_granted' : 'path_not_granted';
}
