/**
 * Dot-like path segments (issue 21 item 7): a decoded segment that is not `.` or `..` itself, but
 * becomes one on a backend that trims whitespace, maps characters through a Windows "best-fit"
 * code page, or re-parses the decoded text (so a decoded `?`, `#` or `;` ends the segment there).
 * IIS/ASP.NET, Win32 file APIs (trailing spaces and dots dropped from a name) and some Java stacks
 * (String.trim, decoded-then-reparsed paths) do this; the gate would have matched the grant against
 * the literal segment while the backend walks up a directory.
 *
 * The rule, per part of the segment:
 * - the segment is cut at the first `?` or `#` (a re-parse ends the path there) or `;` (the path
 *   parameter Tomcat/Jetty drop), each also in its fullwidth form, and split at every character
 *   that best-fits to `/` or `\` (U+2215 `∕` → `/`, U+00A5 `¥` → `\` in CP932, U+20A9 `₩` → `\`
 *   in CP949, …);
 * - a part is dot-like when it holds only dots (`.` or a character that best-fits to `.`, U+2025
 *   `‥` counting two) and ignorable characters (whitespace such as U+0020/U+00A0/U+3000, and
 *   zero-width or soft-hyphen characters a normalizer drops), with 1 or 2 dots, or any number of
 *   dots and at least one ignorable (`... ` loses its trailing space and dots on Win32).
 * A plain `...` is a file name everywhere and stays allowed.
 *
 * Pure; called only for segments that needed percent-decoding (a literal ASCII segment cannot hold
 * whitespace, `?`, `#` or non-ASCII), so the common request never reaches it.
 *
 * @module
 */

const DOT = 1;
const SEPARATOR = 2;
const IGNORABLE = 3;
const END = 4;

/** Non-ASCII characters with a role here; everything else is an ordinary character. */
const ROLE = new Map<number, number>([
  // Best-fit (WideCharToMultiByte without WC_NO_BEST_FIT_CHARS) and NFKC dots.
  [0x2024, DOT], // ONE DOT LEADER
  [0xfe52, DOT], // SMALL FULL STOP
  [0xff0e, DOT], // FULLWIDTH FULL STOP
  // Slash and backslash look-alikes that best-fit to `/` or `\`.
  [0x2044, SEPARATOR], // FRACTION SLASH → /
  [0x2215, SEPARATOR], // DIVISION SLASH → /
  [0x2571, SEPARATOR], // BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT → /
  [0x29f8, SEPARATOR], // BIG SOLIDUS → /
  [0xff0f, SEPARATOR], // FULLWIDTH SOLIDUS → /
  [0x00a5, SEPARATOR], // YEN SIGN → \ (CP932)
  [0xffe5, SEPARATOR], // FULLWIDTH YEN SIGN → ¥ → \ (CP932)
  [0x20a9, SEPARATOR], // WON SIGN → \ (CP949)
  [0xffe6, SEPARATOR], // FULLWIDTH WON SIGN → ₩ → \ (CP949)
  [0x2216, SEPARATOR], // SET MINUS → \
  [0x29f5, SEPARATOR], // REVERSE SOLIDUS OPERATOR → \
  [0x29f9, SEPARATOR], // BIG REVERSE SOLIDUS → \
  [0xfe68, SEPARATOR], // SMALL REVERSE SOLIDUS → \
  [0xff3c, SEPARATOR], // FULLWIDTH REVERSE SOLIDUS → \
  [0xff1b, END], // FULLWIDTH SEMICOLON → ; (a path parameter follows)
  [0x037e, END], // GREEK QUESTION MARK → ; (NFKC)
  [0xff1f, END], // FULLWIDTH QUESTION MARK → ?
  [0xff03, END], // FULLWIDTH NUMBER SIGN → #
  // Whitespace (String.prototype.trim's set beyond ASCII) and what normalizers drop.
  [0x00a0, IGNORABLE],
  [0x00ad, IGNORABLE], // SOFT HYPHEN
  [0x1680, IGNORABLE],
  [0x180e, IGNORABLE],
  [0x2028, IGNORABLE],
  [0x2029, IGNORABLE],
  [0x202f, IGNORABLE],
  [0x205f, IGNORABLE],
  [0x2060, IGNORABLE], // WORD JOINER
  [0x3000, IGNORABLE],
  [0xfeff, IGNORABLE], // ZERO WIDTH NO-BREAK SPACE (BOM)
]);
for (let c = 0x2000; c <= 0x200d; c++) ROLE.set(c, IGNORABLE); // EN QUAD … ZERO WIDTH JOINER

function roleOf(c: number): number {
  if (c < 0x80) {
    if (c === 0x2e) return DOT;
    if (c === 0x2f || c === 0x5c) return SEPARATOR; // refused before this runs; listed for completeness
    if (c === 0x3f || c === 0x23 || c === 0x3b) return END; // query, fragment, path parameter (Tomcat drops it)
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) return IGNORABLE;
    return 0;
  }
  if (c === 0x2025) return DOT; // TWO DOT LEADER, counted twice by the caller
  return ROLE.get(c) ?? 0;
}

/** Whether a decoded segment has a part that a trimming, best-fitting or re-parsing backend reads as `.` or `..`. */
export function isDotLikeSegment(seg: string): boolean {
  let dots = 0;
  let ignorable = false;
  let other = false;
  const n = seg.length;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? seg.charCodeAt(i) : -1;
    const role = c === -1 ? END : roleOf(c);
    if (role === DOT) dots += c === 0x2025 ? 2 : 1;
    else if (role === IGNORABLE) ignorable = true;
    else if (role === 0) other = true;
    else {
      // SEPARATOR or END closes the part.
      if (!other && dots > 0 && (dots <= 2 || ignorable)) return true;
      if (role === END) return false;
      dots = 0;
      ignorable = false;
      other = false;
    }
  }
  return false;
}

/** What a decoded segment does to a backend that decodes and re-parses or trims it, beyond dots. */
export const CUTS_PATH = 1;
export const TRIMS_EMPTY = 2;

/**
 * CUTS_PATH when a decoded segment holds `?` or `#` (or their fullwidth forms): a backend that
 * decodes and re-parses the path ends it there, so `/orders/42%3F/items`, which a grant with a
 * `*` between `/orders/` and `/items` matches, reaches it as `/orders/42` — refused whatever the rest
 * of the segment is (a review). TRIMS_EMPTY when the part before the first `;` is only whitespace or
 * characters a normalizer drops (`%20`, U+00A0, U+200B): trimmed, it is an empty segment, which a
 * backend collapsing `//` drops. 0 otherwise. Only for decoded segments, like isDotLikeSegment.
 */
export function reparseHazard(seg: string): number {
  let onlyIgnorable = true;
  let inHead = true;
  let nonAscii = false;
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c === 0x3f || c === 0x23) return CUTS_PATH;
    if (c >= 0x80) nonAscii = true;
    if (!inHead) continue;
    if (c === 0x3b || c === 0xff1b || c === 0x037e) inHead = false; // `;`, fullwidth, Greek question mark (NFKC `;`)
    else if (roleOf(c) !== IGNORABLE) onlyIgnorable = false;
  }
  if (onlyIgnorable) return TRIMS_EMPTY;
  // Any character NFKC folds to `?` or `#` (fullwidth and small forms, U+2047–2049 `⁇ ⁈ ⁉`): a
  // normalizing backend re-parses those too (a re-probe found the small forms passing a list).
  if (nonAscii) {
    const folded = seg.normalize('NFKC');
    if (folded.includes('?') || folded.includes('#')) return CUTS_PATH;
  }
  return 0;
}
