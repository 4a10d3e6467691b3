/**
 * What `jitgate audit verify` refuses to skip (SPEC §12): lines that would be read one way by the
 * verifier and another by whoever reads the log. Two review rounds (2026-12-06) forged records that
 * the verifier skipped while some reader read an allow: JSON.parse keeps the last of duplicate keys;
 * jq, Go's json.Decoder and Python's raw_decode read a stream of values (a second object on a line,
 * or one object spread over several lines — a newline may stand between any two JSON tokens); every
 * JSON reader decodes `"type":"\u0061udit"`; Go matches keys case-insensitively (`"Type"`, and
 * `"deciſion"` with U+017F by Unicode folding); Python's splitlines ends lines at CR, VT, FF, FS, GS,
 * RS, NEL, U+2028 and U+2029; `json.loads(bytes)` reads UTF-16 and UTF-32; `errors='ignore'` drops
 * invalid UTF-8 bytes out of a key; grep and `jq '..'` find a record nested in another line.
 *
 * So a line that is not a chain line is suspect (must be a chain line, else BROKEN) when:
 * - it parses and has an audit member at any depth, keys case-folded (`type` "audit", `decision`,
 *   `seq`, `prev`, `checkpoint`); the gate's own error logs hold `"type":"Error"`, which is not one,
 *   and JSON quoted inside a string value is a string to every reader;
 * - it does not parse and holds any audit key name or `"audit"` as a JSON string: a stream reader
 *   needs every token whole on one line, so each piece of a spread record carries one;
 * - it does not parse and holds a raw control character (the gate escapes them all: NUL of UTF-16,
 *   CR, VT, FF, FS…) — a reader splitting it at NEL, U+2028 or U+2029 finds a record only if an audit
 *   key name is in it, which the rule above already refuses; or it holds bytes that are not UTF-8.
 * Duplicate keys are found by the same check the token parser uses (src/core/json-duplicates.ts).
 */
import { isUtf8 } from 'node:buffer';
import { colonFollows, stringEnd } from '../core/json-duplicates.ts';

/** Keys only audit lines carry; a line with one of them must be a chain line once the chain began. */
const AUDIT_KEYS = ['decision', 'seq', 'prev', 'checkpoint'] as const;
/** Any audit key name, or "audit", as a JSON string, in folded text (lines that do not parse). */
const AUDIT_TOKEN = /"(?:type|audit|decision|seq|prev|checkpoint)"/;
/** One JSON escape: `\uXXXX` or a backslash and one character. */
const ESCAPE = /\\(?:u([0-9a-fA-F]{4})|([\s\S]))/g;
/** Raw control characters: never in a line the gate writes (JSON escapes them). */
const CONTROL = /[\x00-\x1f\x7f]/;

/** A parsed line that claims to be an audit record (by `type` or by the keys only audit lines have). */
export function looksLikeAudit(v: Record<string, unknown>): boolean {
  return v.type === 'audit' || AUDIT_KEYS.some((k) => Object.hasOwn(v, k));
}

/**
 * The text as a lenient reader may see it: JSON escapes decoded (one pass: `\\u0061` stays
 * `\u0061`), Unicode's two folds onto ASCII letters of the audit keys (ſ → s, K → k), lower case.
 */
function foldedText(text: string): string {
  const decoded = text.includes('\\') ? text.replace(ESCAPE, (_m, hex: string | undefined, ch: string) => (hex !== undefined ? String.fromCharCode(parseInt(hex, 16)) : ESCAPE_CHARS[ch] ?? ch)) : text;
  return fold(decoded);
}
const ESCAPE_CHARS: Readonly<Record<string, string>> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f' };

/**
 * Why a line that is not a chain line must be treated as an audit record some reader would see, or
 * undefined. `parsed`: what JSON.parse read it as (one object), undefined when it does not parse.
 */
export function suspectLine(bytes: Buffer | string, text: string, parsed: Record<string, unknown> | undefined): string | undefined {
  if (typeof bytes !== 'string' && !isUtf8(bytes)) return 'bytes that are not UTF-8 (a reader dropping or replacing them reads other keys)';
  if (parsed !== undefined) {
    // Judged by its members, at any depth: text inside a string value (a log message quoting JSON,
    // an excerpt of a malformed revocation entry) is a string to every JSON reader.
    const found = auditMember(parsed);
    return found === undefined ? undefined : `audit fields (${found}; case folded, nested objects included)`;
  }
  if (AUDIT_TOKEN.test(foldedText(text))) return 'an audit key name as a JSON string (a stream reader joins lines)';
  if (CONTROL.test(text)) return 'a raw control character (the gate escapes them; UTF-16 text has NULs)';
  return undefined;
}

/**
 * Whether some member of the line, at any depth, is `"type": "audit"` as written (names and values unescaped and
 * case-folded), whatever JSON.parse kept: under a repeated key it keeps the last value, other readers the first, so
 * `{"type":"audit",…,"type":"note"}` parses to nothing audit-like (a re-probe saw one verify OK). Text inside a
 * string value is skipped, as every JSON reader skips it.
 */
export function holdsAuditTypeMember(text: string): boolean {
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i)) {
    const end = stringEnd(text, i + 1);
    const name = text.slice(i, end + 1);
    i = end + 1;
    if (!colonFollows(text, i)) continue;
    let v = text.indexOf(':', i) + 1;
    while (v < text.length && (text[v] === ' ' || text[v] === '\t' || text[v] === '\n' || text[v] === '\r')) v++;
    if (text[v] !== '"' || unquotedFolded(name) !== 'type') continue;
    const valueEnd = stringEnd(text, v + 1);
    if (unquotedFolded(text.slice(v, valueEnd + 1)) === 'audit') return true;
  }
  return false;
}

function unquotedFolded(quoted: string): string | undefined {
  try {
    return fold(JSON.parse(quoted) as string);
  } catch {
    return undefined;
  }
}

/** Members visited before a line counts as suspect for its size alone (the gate's lines hold a few dozen). */
const MAX_MEMBERS = 100_000;

/** The first audit member at any depth, keys case-folded (`"Type":"AUDIT"`, `"deciſion"`), or undefined. */
function auditMember(root: unknown): string | undefined {
  const stack: unknown[] = [root];
  let seen = 0;
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null) continue;
    if (++seen > MAX_MEMBERS) return `more than ${MAX_MEMBERS} objects`;
    if (Array.isArray(node)) {
      for (const x of node) stack.push(x);
      continue;
    }
    for (const [k, value] of Object.entries(node)) {
      const key = fold(k);
      if (key === 'decision' || key === 'seq' || key === 'prev' || key === 'checkpoint') return `"${k}"`;
      if (key === 'type' && typeof value === 'string' && fold(value) === 'audit') return `"${k}":"${value}"`;
      stack.push(value);
    }
  }
  return undefined;
}

function fold(s: string): string {
  return s.replace(/\u017f/g, 's').replace(/\u212a/g, 'k').toLowerCase();
}
