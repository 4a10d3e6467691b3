/**
 * Revocation entries (SPEC §5), one JSON object per line:
 *   {"jti": "…"} · {"sub": "…", "before": <epoch s>} · {"txn": "…"}, each with optional "exp".
 * A malformed line is reported with its number and skipped; it never empties the list.
 */
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
  if (kind === 'sub') {
    if (typeof v.before !== 'number' || !Number.isFinite(v.before)) return '"before" must be a number (epoch seconds) with "sub"';
    return { kind, sub: id, before: v.before, exp };
  }
  if (v.before !== undefined) return '"before" goes only with "sub"';
  return kind === 'jti' ? { kind, jti: id, exp } : { kind, txn: id, exp };
}

/** Parses JSON Lines; blank lines and lines starting with `#` are skipped. */
export function parseJsonLines(text: string): { entries: RevocationEntry[]; errors: LineError[] } {
  const entries: RevocationEntry[] = [];
  const errors: LineError[] = [];
  let start = 0;
  let line = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    line++;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    if (raw === '' || raw.startsWith('#')) continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      errors.push({ line, message: 'not valid JSON' });
      continue;
    }
    const entry = parseEntry(value);
    if (typeof entry === 'string') errors.push({ line, message: entry });
    else entries.push(entry);
  }
  return { entries, errors };
}
