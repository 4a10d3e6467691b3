/**
 * Grant path patterns (SPEC §1), compiled once per pattern text (grant.ts keeps them) and matched against the decoded
 * segments that `parseTarget` produced for the request.
 *
 * Language:
 * - Absolute and `/`-separated. A literal segment is compared, exactly and case-sensitively, with
 *   the request's decoded segment (SPEC §1). It may be written decoded or percent-encoded as in a
 *   request target: `/files/a b` and `/files/a%20b` both match the request `/files/a%20b`, and
 *   `/café` and `/caf%C3%A9` both match `/caf%c3%a9`. A raw space or non-ASCII character is read
 *   as its UTF-8 percent-encoding before parsing; a `%` is always the start of an escape (a request
 *   segment holding a decoded `%XX` is refused as double encoding, so a literal one could never
 *   match anyway).
 * - `*` (the whole segment) matches exactly one non-empty segment.
 * - `**` as the LAST segment matches zero or more segments of any content, including a trailing
 *   empty one: `/orders/42/**` matches `/orders/42`, `/orders/42/` and `/orders/42/a/b`.
 * - A trailing slash is a final empty literal segment: `/orders/` matches only `/orders/`.
 *   `/` matches only the root; `/**` matches every path.
 *
 * Malformed (compilePattern returns null):
 * - anything `parseTarget` refuses (not starting with `/`, empty, `.`/`..` or `;`-parameter
 *   variants, bad or double encoding, encoded `/` or `\`, controls, a lone surrogate, confusables,
 *   too long), so a literal can only name a path a request could actually have;
 * - a `?` or `#` (the query is not part of matching);
 * - a segment containing `*` other than exactly `*`, or `**` in the last position: no partial
 *   globs, no `***`, no `**` in the middle, and no escaped star (`%2A`): a literal `*` segment
 *   cannot be named, so an issuer can never get a wildcard it did not write.
 *
 * @module
 */
import { parseTarget } from './request-target.ts';

export interface PathPattern {
  /** The pattern as written in the grant. */
  readonly source: string;
  /** Per position: the decoded literal the segment must equal, or `null` for `*`. */
  readonly parts: readonly (string | null)[];
  /** True when the pattern ends in `**`: any number of further segments may follow `parts`. */
  readonly rest: boolean;
}

/** Compile a grant path pattern; `null` when it is malformed. */
export function compilePattern(source: string): PathPattern | null {
  if (typeof source !== 'string') return null;
  const encoded = encodeRaw(source);
  if (encoded === null) return null;
  const parsed = parseTarget(encoded);
  if (!parsed.ok || parsed.target.query !== '') return null;
  const decoded = parsed.target.segments;
  // parseTarget accepted the text without a query, so its raw segments line up one-to-one
  // with the decoded ones (no empty segment except a trailing one, no '?' or '#').
  const raw = decoded.length === 0 ? [] : encoded.slice(1).split('/');
  if (raw.length !== decoded.length) return null;

  const parts: (string | null)[] = [];
  let rest = false;
  for (let i = 0; i < decoded.length; i++) {
    const r = raw[i];
    const d = decoded[i];
    if (r === undefined || d === undefined) return null;
    if (r === '*') parts.push(null);
    else if (r === '**' && i === decoded.length - 1) rest = true;
    else if (d.includes('*')) return null;
    else parts.push(d);
  }
  return Object.freeze({ source, parts: Object.freeze(parts), rest });
}

/** Matches what a request target can only carry percent-encoded: a space or a non-ASCII character. */
const RAW_CHAR = /[ \u0080-\uffff]/;
const RAW_RUNS = /[ \u0080-\uffff]+/g;

/**
 * The pattern with each raw space or non-ASCII character percent-encoded as UTF-8 (other bytes,
 * controls included, are left for parseTarget to judge); `null` for a lone surrogate, which has no
 * UTF-8 form.
 */
function encodeRaw(source: string): string | null {
  if (!RAW_CHAR.test(source)) return source;
  try {
    // A run at a time, so that a surrogate pair reaches encodeURIComponent whole.
    return source.replace(RAW_RUNS, encodeURIComponent);
  } catch {
    return null;
  }
}

/**
 * Whether the decoded `segments` (from `parseTarget`) lie inside the pattern. Allocation-free:
 * a length check and one pass of string compares.
 */
export function matchPattern(p: PathPattern, segments: readonly string[]): boolean {
  const parts = p.parts;
  const n = parts.length;
  if (p.rest ? segments.length < n : segments.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const want = parts[i];
    const got = segments[i];
    if (want === null) {
      if (got === '' || got === undefined) return false;
    } else if (want !== got) return false;
  }
  return true;
}
