/**
 * The one spelling of a status list URI the gate accepts (SPEC §10), shared by the gate's allowed_uris
 * check (list-cache.ts) and `jitgate status-list --uri`, so a broker cannot publish a list under a URI
 * its tokens could never name.
 *
 * Canonical as the WHATWG URL parser writes it (lower-case scheme and host, no default port, no `.`/`..`
 * or `%2e%2e` segments), over http(s), without user info or fragment — so no spelling reaches around a
 * prefix. And no percent-encoded `/`, `\`, `.`, `?` or `#` in the path: the gate fetches the URI verbatim, and
 * an origin or CDN that decodes `%2F` would route `…/status/%2F..%2Fctl` outside the prefix it passed, one
 * that decodes `%3F` and parses again would end the path at `…/status/..?` (the proxy's
 * `path_encoded_delimiter`; a probe); nor the other spellings below.
 */

const ENCODED_SEPARATOR_OR_DOT = /%(?:2f|5c|2e|3f|23)/i;
/**
 * Other path spellings some origin or CDN folds onto a separator or a dot, as the proxy's own target
 * rules refuse them (SPEC §2; found reaching the list server by black-box probes): `;` path parameters
 * (`..;/` on Tomcat) and their encoded form `%3B`, `%25` (decoded twice: `%252e`), encoded bytes that
 * are not printable ASCII (overlong or full-width dots such as `%C0%AE`, `%EF%BC%8E`; `%20` after a
 * `..`), a `%` that is not followed by two hex digits (IIS's `%u002e`, `%%32%65` decoded twice, `%zz`),
 * and empty segments (`//`, which some origins merge).
 */
const FOLDED_SPELLING = /;|%3b|%25|%[01][0-9a-f]|%20|%7f|%[89a-f][0-9a-f]|%(?![0-9a-f]{2})|\/\//i;

export function isCanonicalListUri(uri: string): boolean {
  const u = URL.parse(uri);
  if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.href !== uri) return false;
  // `#` alone leaves hash empty but is still a fragment delimiter.
  if (u.username !== '' || u.password !== '' || uri.includes('#')) return false;
  return !ENCODED_SEPARATOR_OR_DOT.test(u.pathname) && !FOLDED_SPELLING.test(u.pathname);
}
