/**
 * What `jitgate audit verify` refuses to skip (SPEC §12): lines that would be read one way by the
 * verifier and another by whoever reads the log. JSON.parse keeps the last of duplicate keys
 * (`{"type":"audit",…,"type":"note"}` reads as a note to it, as an audit line to a grep); a line
 * that is not exactly one JSON value (a BOM before it, a second object after it) reads as an audit
 * record to jq, which reads a stream of values, or to a lenient parser; `"type":"\u0061udit"` is
 * `"type":"audit"` to every JSON reader; and a line holding a "\r", U+2028 or another character
 * that Python's `splitlines` (or a SIEM) ends lines at is two lines to such a reader. So the text
 * test runs on the line with its JSON escapes decoded, and a line that the gate did not write as
 * one plain JSON object is judged by what any of those readers could find in it. Duplicate keys
 * are found by the same check the token parser uses (src/core/json-duplicates.ts).
 */

/** Keys only audit lines carry; a line with one of them must be a chain line once the chain began. */
const AUDIT_KEYS = ['decision', 'seq', 'prev', 'checkpoint'] as const;
/** The same, as text (escapes decoded), for lines that do not parse as one object or that other readers split. */
const AUDIT_TEXT = /"(?:type"\s*:\s*"audit|decision"\s*:|seq"\s*:|prev"\s*:|checkpoint"\s*:)/;
/** One JSON escape: `\uXXXX` or a backslash and one character. */
const ESCAPE = /\\(?:u([0-9a-fA-F]{4})|([\s\S]))/g;
/**
 * Characters some reader ends a line at (Python's str.splitlines: CR, VT, FF, FS, GS, RS, NEL,
 * U+2028, U+2029), which the gate never writes outside a JSON string escape… except U+2028/U+2029
 * and NEL, which JSON allows raw in strings: a line holding one is judged by its decoded text.
 */
const READER_LINE_BREAK = /[\r\v\f\x1c-\x1e\x85\u2028\u2029]/;

/** A parsed line that claims to be an audit record (by `type` or by the keys only audit lines have). */
export function looksLikeAudit(v: Record<string, unknown>): boolean {
  return v.type === 'audit' || AUDIT_KEYS.some((k) => Object.hasOwn(v, k));
}

/**
 * A line's text reads as (or holds) an audit record to some reader more lenient than JSON.parse of
 * the whole line: the audit keys appear in it once its JSON escapes are decoded.
 */
export function textLooksLikeAudit(text: string): boolean {
  return AUDIT_TEXT.test(text) || (text.includes('\\') && AUDIT_TEXT.test(decodeEscapes(text)));
}

/** Some reader splits this line into several (see READER_LINE_BREAK). */
export function hasReaderLineBreak(text: string): boolean {
  return READER_LINE_BREAK.test(text);
}

/** The text with every JSON string escape replaced by what it stands for (one pass: `\\u0061` stays `\u0061`). */
export function decodeEscapes(text: string): string {
  return text.replace(ESCAPE, (_m, hex: string | undefined, ch: string) => (hex !== undefined ? String.fromCharCode(parseInt(hex, 16)) : ch === 'n' ? '\n' : ch === 't' ? '\t' : ch === 'r' ? '\r' : ch === 'b' ? '\b' : ch === 'f' ? '\f' : ch));
}
