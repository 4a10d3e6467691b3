/**
 * Revocation entries (SPEC §5), one JSON object per line:
 *   {"jti": "…"} · {"sub": "…", "before": <epoch s>} · {"txn": "…"}, each with optional "exp".
 * A malformed line is reported with its number and skipped; it never empties the list.
 */
import { duplicateOrTooDeep } from '../core/json-duplicates.ts';
import { parseJson } from '../core/json-parse.ts';
import { eachSliced } from './slices.ts';

export type RevocationEntry =
  | { readonly kind: 'jti'; readonly jti: string; readonly exp: number | undefined }
  | { readonly kind: 'sub'; readonly sub: string; readonly before: number; readonly exp: number | undefined }
  | { readonly kind: 'txn'; readonly txn: string; readonly exp: number | undefined };

export interface LineError {
  readonly line: number;
  readonly message: string;
}

/** An entry, or a message saying which field is wrong. */
export function parseEntry(value: unknown): RevocationEntry | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a JSON object';
  const v = value as Record<string, unknown>;
  let exp: number | undefined;
  if (v.exp !== undefined) {
    if (typeof v.exp !== 'number' || !Number.isFinite(v.exp)) return '"exp" must be a number (epoch seconds)';
    exp = v.exp;
  }
  const kinds = (['jti', 'sub', 'txn'] as const).filter((k) => v[k] !== undefined);
  if (kinds.length !== 1) return 'expected exactly one of "jti", "sub" (with "before") or "txn"';
  const kind = kinds[0]!;
  const id = v[kind];
  if (typeof id !== 'string' || id === '') return `"${kind}" must be a non-empty string`;
  // A token whose claim is not such a value is refused as invalid_claims (core/claims.ts), so an
  // entry naming one could never revoke anything: refused, so a stray newline is not acknowledged.
  if (!claimLike(id)) return `"${kind}" can never match a token: a token's ${kind} is 1–1024 visible ASCII characters or spaces, without leading or trailing spaces`;
  if (kind === 'sub') {
    if (typeof v.before !== 'number' || !Number.isFinite(v.before)) return '"before" must be a number (epoch seconds) with "sub"';
    return { kind, sub: id, before: v.before, exp };
  }
  if (v.before !== undefined) return '"before" goes only with "sub"';
  return kind === 'jti' ? { kind, jti: id, exp } : { kind, txn: id, exp };
}

/** The same rule as a token's sub, jti and txn (core/claims.ts). */
function claimLike(s: string): boolean {
  if (s.length > 1024 || s.trim() !== s) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** One entry's JSON text: an entry, or what is wrong (a member named twice is ambiguous, so refused). */
export function parseEntryText(text: string): RevocationEntry | string {
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    return 'not valid JSON';
  }
  if (duplicateOrTooDeep(text, value)) return 'a member is named twice';
  return parseEntry(value);
}

export interface ParsedLines {
  readonly entries: RevocationEntry[];
  readonly errors: LineError[];
}

/** Parses JSON Lines; blank lines and lines starting with `#` are skipped. */
export function parseJsonLines(text: string): ParsedLines {
  const out: ParsedLines = { entries: [], errors: [] };
  for (const l of jsonLines(text)) parseLine(l, out);
  return out;
}

/** parseJsonLines in slices, the event loop served between them: for reloads of large lists. */
export async function parseJsonLinesSliced(text: string): Promise<ParsedLines> {
  const out: ParsedLines = { entries: [], errors: [] };
  await eachSliced(jsonLines(text), (l) => parseLine(l, out));
  return out;
}

/** The lines that hold something (trimmed, with their 1-based numbers). */
function* jsonLines(text: string): Generator<[number, string]> {
  let start = 0;
  let line = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    line++;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    if (raw !== '' && !raw.startsWith('#')) yield [line, raw];
  }
}

function parseLine([line, raw]: [number, string], out: ParsedLines): void {
  const entry = parseEntryText(raw);
  if (typeof entry === 'string') out.errors.push({ line, message: entry });
  else out.entries.push(entry);
}
