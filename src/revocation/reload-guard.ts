/**
 * When a revocation reload must be refused (SPEC §5: "a reload that finds no valid line where
 * entries existed keeps the previous entries"). Swapping in a broken text would un-revoke tokens,
 * so each of these keeps the last good list instead:
 * - `empty`: zero bytes (or only blanks/comments) where entries existed — a file truncated by an
 *   in-place rewrite (`>` in a shell, `open(…, 'w')`) looks exactly like this. Clearing the list on
 *   purpose takes the explicit marker line {@link CLEAR_MARKER}.
 * - `torn_tail`: the last line has no newline and is not a whole entry — a write cut short or read
 *   while it was being written.
 * - `no_valid_line`: lines, but not one is an entry (an HTML error page in place of the list).
 * A file source adds `changing` (the file changed while it was read); see file-source.ts.
 */
import { parseEntry, parseJsonLinesSliced, type LineError, type RevocationEntry } from './entries.ts';
import { parseJson } from '../core/json-parse.ts';

export type RefusalReason = 'empty' | 'torn_tail' | 'no_valid_line' | 'changing';

/** A line (alone, trimmed) that says "this list is empty on purpose". */
export const CLEAR_MARKER = '# jitgate: empty';

export interface Accepted {
  readonly entries: RevocationEntry[];
  readonly errors: LineError[];
}

export interface Refused {
  readonly refused: RefusalReason;
  readonly detail: string;
}

/**
 * `hadEntries`: the list in use is not empty (an empty text then needs the marker). Parsed in slices
 * (slices.ts): a reload of a million lines no longer stops the gate answering for seconds.
 */
export async function judgeReload(text: string, hadEntries: boolean): Promise<Accepted | Refused> {
  if (text !== '' && !text.endsWith('\n')) {
    const tail = text.slice(text.lastIndexOf('\n') + 1).trim();
    if (tail !== '' && !tail.startsWith('#') && !isWholeEntry(tail)) {
      return { refused: 'torn_tail', detail: 'the last line has no newline and is not a whole entry (a write cut short?)' };
    }
  }
  const { entries, errors } = await parseJsonLinesSliced(text);
  if (entries.length === 0 && errors.length > 0) {
    const e = errors[0]!;
    return { refused: 'no_valid_line', detail: `no line is a revocation entry (line ${e.line}: ${e.message})` };
  }
  if (entries.length === 0 && hadEntries && !hasClearMarker(text)) {
    return { refused: 'empty', detail: `no entries where entries existed; to clear the list on purpose write the line "${CLEAR_MARKER}"` };
  }
  return { entries, errors };
}

function isWholeEntry(line: string): boolean {
  try {
    return typeof parseEntry(parseJson(line)) !== 'string';
  } catch {
    return false;
  }
}

function hasClearMarker(text: string): boolean {
  for (const line of text.split('\n')) if (line.trim() === CLEAR_MARKER) return true;
  return false;
}
