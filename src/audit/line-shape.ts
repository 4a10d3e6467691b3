/**
 * What `jitgate audit verify` refuses to skip (SPEC §12): lines that would be read one way by the
 * verifier and another by whoever reads the log. JSON.parse keeps the last of duplicate keys
 * (`{"type":"audit",…,"type":"note"}` reads as a note to it, as an audit line to a grep), and a line
 * that is not exactly one JSON value (a BOM before it, bytes after it) was skipped as "not JSON"
 * although it reads as an audit record to a human or a lenient parser. Duplicate keys are found by
 * the same check the token parser uses (src/core/json-duplicates.ts).
 */

/** Keys only audit lines carry; a line with one of them must be a chain line once the chain began. */
const AUDIT_KEYS = ['decision', 'seq', 'prev', 'checkpoint'] as const;
/** The same, as text, for lines that do not parse (a BOM, trailing bytes, a damaged line). */
const AUDIT_TEXT = /"(?:type"\s*:\s*"audit|decision"\s*:|seq"\s*:|prev"\s*:|checkpoint"\s*:)/;

/** A parsed line that claims to be an audit record (by `type` or by the keys only audit lines have). */
export function looksLikeAudit(v: Record<string, unknown>): boolean {
  return v.type === 'audit' || AUDIT_KEYS.some((k) => Object.hasOwn(v, k));
}

/** A line that did not parse but reads as an audit record to anything more lenient than JSON.parse. */
export function textLooksLikeAudit(text: string): boolean {
  return AUDIT_TEXT.test(text);
}
