/**
 * Request target → decoded path segments + canonical path (SPEC §2). The gate matches grants
 * against `segments` and forwards `path` + `query`, so the backend receives exactly what was
 * authorized, whatever its own decoder does with `..;`, `%2F`, `%252e` or fullwidth `．．／`.
 *
 * Decisions beyond the SPEC text (the SPEC is silent; all of them refuse, never widen):
 * - Trailing slash: a single trailing `/` is kept and significant. `/orders/` has the segments
 *   `['orders', '']` and is a different path from `/orders`; `*` never matches that final
 *   empty segment, `**` does. Only the LAST segment may be empty; `/` itself is `[]`.
 * - `query` holds the raw text from the first `?` on, INCLUDING the `?` (`''` when absent), so
 *   `path + query` reproduces `/a?` exactly. It is not inspected beyond the raw character set.
 * - The raw target must be printable ASCII (0x21–0x7E): space, controls, DEL, non-ASCII and lone
 *   surrogates are `path_control_char`, anywhere in the target including the query. A `#`
 *   anywhere is `bad_request_target` (a fragment never arrives over HTTP).
 * - A segment whose part before the first `;` is empty (`;x`, `%3Bjsessionid=1`) is an empty
 *   segment with a parameter (`path_empty_segment`), as `..;x` is a dot segment: Tomcat-style
 *   backends strip the parameter and fold the resulting `//`, so `/orders/;x` would reach `/orders/`.
 * - Control characters are C0, DEL and also C1 (U+0080–U+009F, i.e. `%C2%80`–`%C2%9F`).
 * - Double encoding is judged on the decoded text (`%` + two hex digits after one decode), so
 *   `%252e` and `%25%32%65` are both refused; `%25zz` (decodes to `%zz`) is allowed.
 * - NFKC confusables also include a fold to `%` + two hex digits (`％２ｅ`) and an empty part
 *   before `;` (fullwidth `；`), the same rules as for the decoded text.
 * - When several problems exist, the first one found is reported: length, origin-form, the raw
 *   character set (whole target, left to right), then each segment left to right.
 *
 * @module
 */
import { isUtf8 } from 'node:buffer';
import { CUTS_PATH, isDotLikeSegment, reparseHazard, TRIMS_EMPTY } from './dot-like.ts';

/** Why a request target is refused (all 400, SPEC §2); codes match `reasons.ts`. */
export type TargetReason =
  | 'bad_request_target' // not origin-form (absolute-form, authority-form, `*`, empty), or a `#`
  | 'path_backslash' // `\` raw or `%5C`
  | 'path_control_char' // C0/DEL/C1 raw or encoded; raw space, non-ASCII or lone surrogate anywhere
  | 'path_bad_encoding' // `%` not followed by two hex digits
  | 'path_encoded_slash' // `%2F`
  | 'path_double_encoding' // decoded text still holds `%` + two hex digits (`%252e`)
  | 'path_dot_segment' // `.`/`..` raw or encoded, also before a `;` parameter (`..;x`)
  | 'path_dot_like_segment' // folds to `.`/`..` by trimming, best-fit mapping or a re-parse (src/core/dot-like.ts)
  | 'path_encoded_delimiter' // a decoded `?` or `#` (`%3F`, `%23`, fullwidth): a re-parse would end the path there
  | 'path_empty_segment' // `//`, or an empty part before a `;` parameter (`/;x`)
  | 'path_invalid_utf8' // overlong, surrogate, truncated, > U+10FFFF
  | 'path_unicode_confusable' // NFKC form holds `/`, `\`, a control, `%XX`, or a dot/empty head
  | 'path_too_long'; // raw target (query included), or the canonical one forwarded, longer than the limit

export interface Target {
  /** Canonical path: `/` + each decoded segment through {@link encodeSegment}, joined by `/`. */
  readonly path: string;
  /** Percent-decoded segments; `[]` for `/`; a trailing `/` gives a final `''`. */
  readonly segments: readonly string[];
  /** Raw query INCLUDING its leading `?`, or `''` when the target had no `?`. */
  readonly query: string;
}

export type TargetResult = { ok: true; target: Target } | { ok: false; reason: TargetReason };

/** Default limit on the raw target length (characters = bytes, since it must be ASCII). */
export const DEFAULT_MAX_TARGET_LENGTH = 8192;

type Refusal = { readonly ok: false; readonly reason: TargetReason };
const refuse = (reason: TargetReason): Refusal => Object.freeze({ ok: false, reason });
// Preallocated so a refusal costs nothing either.
const BAD_TARGET = refuse('bad_request_target');
const BACKSLASH_R = refuse('path_backslash');
const CONTROL = refuse('path_control_char');
const BAD_ENCODING = refuse('path_bad_encoding');
const ENCODED_SLASH = refuse('path_encoded_slash');
const DOUBLE_ENCODING = refuse('path_double_encoding');
const DOT_SEGMENT = refuse('path_dot_segment');
const DOT_LIKE = refuse('path_dot_like_segment');
const ENCODED_DELIMITER = refuse('path_encoded_delimiter');
const EMPTY_SEGMENT = refuse('path_empty_segment');
const INVALID_UTF8 = refuse('path_invalid_utf8');
const CONFUSABLE = refuse('path_unicode_confusable');
const TOO_LONG = refuse('path_too_long');

const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const PERCENT = 0x25;
const QUESTION = 0x3f;
const HASH = 0x23;
const DOT = 0x2e;
const SEMICOLON = 0x3b;

/** ASCII characters a canonical segment keeps literally: RFC 3986 unreserved + sub-delims + `:@`. */
const LITERAL = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@") {
  LITERAL[ch.charCodeAt(0)] = 1;
}
/** `%XX` with upper-case hex for every byte value. */
const PCT: readonly string[] = Array.from({ length: 256 }, (_, b) => '%' + b.toString(16).toUpperCase().padStart(2, '0'));
/** Hex digit value by char code, -1 when not a hex digit. */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(i)] = i;
}
const hexValue = (c: number): number => (c < 128 ? (HEX_VALUE[c] ?? -1) : -1);

// `ignoreBOM` keeps a leading U+FEFF in the segment instead of silently dropping it.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** Scratch for the decoded bytes of one segment; grown only for segments beyond its size. */
let scratch = new Uint8Array(DEFAULT_MAX_TARGET_LENGTH);

/**
 * Parse an origin-form request target (path + optional `?query`) as received. Never throws.
 * `maxLength` bounds the raw target, query included (default {@link DEFAULT_MAX_TARGET_LENGTH}).
 * `allowDotLike` (config `limits.allow_dot_like_segments`) skips the dot-like, encoded `?`/`#` and
 * whitespace-only segment refusals for a backend known not to trim, best-fit or re-parse decoded segments.
 */
export function parseTarget(raw: string, maxLength: number = DEFAULT_MAX_TARGET_LENGTH, allowDotLike = false): TargetResult {
  const n = raw.length;
  if (!(n <= maxLength)) return TOO_LONG; // also when maxLength is NaN: fail closed
  if (n === 0 || raw.charCodeAt(0) !== SLASH) return BAD_TARGET;

  let pathEnd = n;
  for (let i = 1; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return CONTROL;
    if (c === HASH) return BAD_TARGET;
    if (c === QUESTION && pathEnd === n) pathEnd = i;
  }
  const query = pathEnd === n ? '' : raw.slice(pathEnd);
  if (pathEnd === 1) return { ok: true, target: { path: '/', segments: [], query } };

  const segments: string[] = [];
  let changed = false;
  let start = 1;
  for (let i = 1; i <= pathEnd; i++) {
    if (i < pathEnd && raw.charCodeAt(i) !== SLASH) continue;
    if (start === i) {
      if (i !== pathEnd) return EMPTY_SEGMENT;
      segments.push(''); // the single trailing slash
      break;
    }
    let j = start;
    let literal = true;
    for (; j < i; j++) {
      const c = raw.charCodeAt(j);
      if (c === PERCENT) break;
      if (c === BACKSLASH) return BACKSLASH_R;
      if (LITERAL[c] !== 1) literal = false;
    }
    let seg: string;
    if (j === i) {
      // Fast path: no '%', so the segment is its own decoded form and ASCII (NFKC-stable).
      seg = raw.slice(start, i);
      const head = paramHead(seg);
      if (head === HEAD_DOT) return DOT_SEGMENT;
      if (head === HEAD_EMPTY) return EMPTY_SEGMENT;
      if (!literal) changed = true;
    } else {
      const decoded = decodeSegment(raw, start, i);
      if (typeof decoded !== 'string') return decoded;
      // Only a decoded segment can hold whitespace, `?`, `#` or non-ASCII: the literal path skips this.
      if (!allowDotLike) {
        // The same backends (trimming, re-parsing decoded text), the same switch.
        if (isDotLikeSegment(decoded)) return DOT_LIKE;
        const hazard = reparseHazard(decoded);
        if (hazard === CUTS_PATH) return ENCODED_DELIMITER;
        if (hazard === TRIMS_EMPTY) return EMPTY_SEGMENT;
      }
      seg = decoded;
      changed = true;
    }
    segments.push(seg);
    start = i + 1;
  }

  let path: string;
  if (!changed) path = pathEnd === n ? raw : raw.slice(0, pathEnd);
  else {
    path = '';
    for (const seg of segments) path += '/' + encodeSegment(seg);
    // What is forwarded is the canonical form, up to 3× the raw text (`"` becomes `%22`): the limit
    // bounds what the backend receives too (a review sent 8,100 characters and forwarded 24,634).
    if (path.length + query.length > maxLength) return TOO_LONG;
  }
  return { ok: true, target: { path, segments, query } };
}

/** Strict percent-decoding of `raw[start, end)` plus every check on the decoded segment. */
function decodeSegment(raw: string, start: number, end: number): string | Refusal {
  if (scratch.length < end - start) scratch = new Uint8Array(end - start);
  const buf = scratch;
  let len = 0;
  let nonAscii = false;
  let percent = false;
  for (let j = start; j < end; j++) {
    const c = raw.charCodeAt(j);
    if (c === BACKSLASH) return BACKSLASH_R;
    if (c !== PERCENT) {
      buf[len++] = c;
      continue;
    }
    if (j + 2 >= end) return BAD_ENCODING;
    const hi = hexValue(raw.charCodeAt(j + 1));
    const lo = hexValue(raw.charCodeAt(j + 2));
    if (hi < 0 || lo < 0) return BAD_ENCODING;
    const b = (hi << 4) | lo;
    if (b === SLASH) return ENCODED_SLASH;
    if (b === BACKSLASH) return BACKSLASH_R;
    if (b < 0x20 || b === 0x7f) return CONTROL;
    if (b >= 0x80) nonAscii = true;
    else if (b === PERCENT) percent = true;
    buf[len++] = b;
    j += 2;
  }
  const bytes = buf.subarray(0, len);
  // isUtf8 refuses overlongs, surrogates (CESU), > U+10FFFF and truncation without throwing.
  if (nonAscii && !isUtf8(bytes)) return INVALID_UTF8;
  let seg: string;
  try {
    seg = UTF8.decode(bytes);
  } catch {
    return INVALID_UTF8; // unreachable after isUtf8; kept so no input can ever throw
  }
  if (percent && hasPercentHex(seg)) return DOUBLE_ENCODING;
  const head = paramHead(seg);
  if (head === HEAD_DOT) return DOT_SEGMENT;
  if (head === HEAD_EMPTY) return EMPTY_SEGMENT;
  if (nonAscii) {
    for (let k = 0; k < seg.length; k++) {
      const c = seg.charCodeAt(k);
      if (c >= 0x80 && c <= 0x9f) return CONTROL; // C1 controls
    }
    const folded = seg.normalize('NFKC');
    if (folded !== seg && foldsToStructure(folded)) return CONFUSABLE;
  }
  return seg;
}

/** What the NFKC form of a segment must not contain: path structure, controls, `%XX`. */
function foldsToStructure(folded: string): boolean {
  for (let k = 0; k < folded.length; k++) {
    const c = folded.charCodeAt(k);
    if (c === SLASH || c === BACKSLASH || c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return hasPercentHex(folded) || paramHead(folded) !== HEAD_OK;
}

/** True when `s` contains `%` followed by two hex digits: a second decode would change it. */
function hasPercentHex(s: string): boolean {
  for (let k = s.indexOf('%'); k !== -1 && k + 2 < s.length; k = s.indexOf('%', k + 1)) {
    if (hexValue(s.charCodeAt(k + 1)) >= 0 && hexValue(s.charCodeAt(k + 2)) >= 0) return true;
  }
  return false;
}

const HEAD_OK = 0;
const HEAD_DOT = 1;
const HEAD_EMPTY = 2;

/**
 * Classifies the part of a non-empty segment before its first `;` (the path parameter that
 * Tomcat/Jetty strip): `.` or `..` → dot segment, empty → empty segment.
 */
function paramHead(seg: string): number {
  const n = seg.length;
  const c0 = seg.charCodeAt(0);
  if (c0 === SEMICOLON) return HEAD_EMPTY;
  if (c0 !== DOT) return HEAD_OK;
  if (n === 1) return HEAD_DOT;
  const c1 = seg.charCodeAt(1);
  if (c1 === SEMICOLON) return HEAD_DOT;
  if (c1 !== DOT) return HEAD_OK;
  return n === 2 || seg.charCodeAt(2) === SEMICOLON ? HEAD_DOT : HEAD_OK;
}

/**
 * Canonical encoding of one decoded segment: unreserved, sub-delims, `:` and `@` stay literal,
 * everything else becomes `%XX` of its UTF-8 bytes (upper-case hex). Returns `decoded` itself
 * when nothing needs encoding. Never throws: a lone surrogate is encoded as U+FFFD.
 */
export function encodeSegment(decoded: string): string {
  const n = decoded.length;
  let i = 0;
  while (i < n) {
    const c = decoded.charCodeAt(i);
    if (c >= 128 || LITERAL[c] !== 1) break;
    i++;
  }
  if (i === n) return decoded;
  let out = decoded.slice(0, i);
  for (; i < n; i++) {
    let c = decoded.charCodeAt(i);
    if (c < 0x80) {
      out += LITERAL[c] === 1 ? decoded[i] : PCT[c];
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < n ? decoded.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else c = 0xfffd;
    }
    if (c < 0x800) out += PCT[0xc0 | (c >> 6)]! + PCT[0x80 | (c & 0x3f)]!;
    else if (c < 0x10000) out += PCT[0xe0 | (c >> 12)]! + PCT[0x80 | ((c >> 6) & 0x3f)]! + PCT[0x80 | (c & 0x3f)]!;
    else {
      out +=
        PCT[0xf0 | (c >> 18)]! + PCT[0x80 | ((c >> 12) & 0x3f)]! + PCT[0x80 | ((c >> 6) & 0x3f)]! + PCT[0x80 | (c & 0x3f)]!;
    }
  }
  return out;
}
