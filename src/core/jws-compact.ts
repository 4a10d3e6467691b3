/**
 * Our parse of a compact JWS (RFC 7515 §7.1) on the cache-miss path, decoded once: the split, the
 * base64url, the UTF-8 and the JSON of the header and the claims. jose remains the oracle:
 * test/core/jws-differential.test.ts feeds the same tokens to this code and to jose and requires
 * the same accept/reject and the same claims. Where this is stricter than jose it says so below
 * (docs/speed-round-two.md lists it); nowhere is it more lenient.
 *
 * What jose (6.x on Node 24, where `atob` decodes) accepts and we match:
 *   - base64url without padding whose last chunk has 2 or 3 characters, non-zero trailing bits
 *     included (atob ignores them, so does Buffer); a length ≡ 1 (mod 4) is refused.
 *   - UTF-8 decoded fatally (invalid sequences refused), one leading BOM dropped (TextDecoder).
 *   - header and claims: JSON.parse (names written with escapes unescaped first, json-parse.ts), and
 *     the result must be a plain object (not an array/null).
 * Stricter than jose (refused here, accepted there):
 *   - any character outside A–Z a–z 0–9 - _ in a segment: padding `=`, whitespace (atob skips it);
 *   - a member named twice in the header or the claims (JSON.parse keeps the last; json-duplicates.ts);
 *   - any `crit` header (jose knows `b64`; jitgate understands no extension) — decided by the caller;
 *   - a member name holding `"`, `\` or a control character (json-parse.ts: V8's cached names).
 */
import { BoundedMemo } from '../cache/bounded-memo.ts';
import { duplicateOrTooDeep } from './json-duplicates.ts';
import { parseJson } from './json-parse.ts';

export interface CompactJws {
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: Readonly<Record<string, unknown>>;
  /** Index of the second dot: the signing input is token[0, dot2). */
  readonly dot2: number;
}

/** Fatal UTF-8 with BOM stripping, exactly as jose decodes the header and the claims. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Three non-empty segments of A–Z a–z 0–9 - _ joined by two dots. One regular expression, which V8
 * compiles to native code: 0.4 µs for a 571-character bench token against 1.9 µs for the same check
 * written as a charCodeAt loop (bench/README.md). `\w` without the `u` or `i` flag is exactly
 * [A-Za-z0-9_], and `$` without `m` is the end of the input, not the end of a line.
 */
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]+$/;

/** Three non-empty base64url parts: anything else is refused before any decoding. */
export function looksLikeCompactJws(token: string): boolean {
  return COMPACT_JWS.test(token);
}

/** atob refuses a last chunk of one character; Buffer would silently drop it. */
function decodableLength(n: number): boolean {
  return n % 4 !== 1;
}

/**
 * A JSON object segment, or undefined (bad base64url length, bad UTF-8, bad JSON, not an object, duplicate
 * members): decoded once, as jose decodes it, with the duplicate-member rule jose lacks. Also for the JWS
 * that are not grant tokens (DPoP proofs, status lists), which jose verifies.
 */
export function jsonObject(token: string, start: number, end: number): Record<string, unknown> | undefined {
  if (!decodableLength(end - start)) return undefined;
  let text: string;
  let value: unknown;
  try {
    text = utf8.decode(Buffer.from(token.slice(start, end), 'base64url'));
    value = parseJson(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  if (duplicateOrTooDeep(text, value)) return undefined;
  return value as Record<string, unknown>;
}

/**
 * Headers decoded before, by their base64url text. An issuer signs every token with the same few headers
 * (alg, kid, typ), so on a miss the header is a lookup instead of base64url, UTF-8, JSON and the
 * duplicate-member count (0.9 µs of the 3.7 µs parse of a bench token, bench/README.md). The value is a
 * pure function of the text and is frozen, since tokens share it. Bounded like the grant pattern memo:
 * emptied when full, so a stream of distinct headers costs what it did without it.
 */
const decodedHeaders = new BoundedMemo<string, Readonly<Record<string, unknown>>>(64);

function headerOf(token: string, dot1: number): Readonly<Record<string, unknown>> | undefined {
  const text = token.slice(0, dot1);
  const known = decodedHeaders.get(text);
  if (known !== undefined) return known;
  const decoded = jsonObject(token, 0, dot1);
  if (decoded === undefined) return undefined;
  // Nesting deep enough to exhaust the stack here: not shared, and as valid as it was.
  return deepFreeze(decoded) ? decodedHeaders.set(text, decoded) : decoded;
}

function deepFreeze(value: unknown): boolean {
  try {
    freeze(value);
    return true;
  } catch {
    return false;
  }
}

function freeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const v of Object.values(value)) freeze(v);
}

/** The decoded header and claims, or undefined for anything malformed. */
export function parseCompactJws(token: string): CompactJws | undefined {
  if (!COMPACT_JWS.test(token)) return undefined;
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (!decodableLength(token.length - dot2 - 1)) return undefined;
  const header = headerOf(token, dot1);
  if (header === undefined) return undefined;
  const payload = jsonObject(token, dot1 + 1, dot2);
  if (payload === undefined) return undefined;
  return { header, payload, dot2 };
}
