/**
 * JSON.parse for text from outside (token headers and claims, DPoP proofs, status lists, JWKS documents,
 * revocation entries, audit lines under verification) that never hands V8 a member name written with an
 * escape.
 *
 * V8 (Node 20 and 24 here; nodejs/node#63785) reuses a member name cached from earlier objects of the same
 * shape when the first raw characters of an escaped name equal it: after one parse of `{"a":1,"\\u0":2}`,
 * `{"a":1,"\u0063nf":…}` is read with a member `\u0` instead of `cnf`. A token is parsed before its signature
 * is checked, so one unsigned request could make a later signed token lose its DPoP binding, its `nbf`, a
 * grant's `locations` or a header's `crit`, and slip a repeated member past the duplicate count (a review,
 * 2026-12-07). So names written with escapes are decoded here and the text rewritten without them, which V8
 * reads exactly; a name that needs an escape even so (`"`, `\`, a control character) is refused as a syntax
 * error. No header, claim, key or entry name has one, and the cached names such a poison needs all hold a `\`.
 *
 * Text without a backslash (nearly every token) goes to JSON.parse as it is.
 */
import { colonFollows, stringEnd } from './json-duplicates.ts';

/** JSON.parse(text), member names unescaped first; throws SyntaxError as JSON.parse does, also for a refused name. */
export function parseJson(text: string): unknown {
  return JSON.parse(text.indexOf('\\') === -1 ? text : withUnescapedNames(text));
}

/** The text with every member name that holds an escape written without it. */
function withUnescapedNames(text: string): string {
  let out = '';
  let copied = 0;
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i)) {
    const start = i + 1;
    const end = stringEnd(text, start); // the closing quote (or past the end: not JSON, JSON.parse will say so)
    i = end + 1;
    // Values keep their escapes; only member names are rewritten.
    if (!holdsEscape(text, start, end) || !colonFollows(text, i)) continue;
    // A string literal alone: no object, so none of the cached names above come into it.
    const name = JSON.parse(text.slice(start - 1, end + 1)) as string;
    if (/["\\\u0000-\u001f]/.test(name)) throw new SyntaxError('a member name that needs an escape');
    out += text.slice(copied, start) + name;
    copied = end;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** A backslash in text[start, end): looked for in the string itself, so the whole scan stays linear. */
function holdsEscape(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) === 0x5c) return true;
  return false;
}
