/**
 * Path confusion (SPEC §2): every refusal raw, single- and double-encoded, in mixed-case hex, with
 * `;` parameters, overlong UTF-8 and NFKC look-alikes, plus non-origin-form targets, long targets
 * and raw non-UTF-8 bytes. Rows are templates over a granted prefix G (a token allows G and below)
 * and a forbidden path F reached from G by going `depth` levels up, so the same corpus runs against
 * the gate (G = /orders/42, F = orders/43) and against real backends (G = /public, F = admin/).
 *
 * Where node:http refuses the bytes before the gate runs (`http 400`), forward-auth and gRPC still
 * carry them (a header value, a proto string), so the gate's own reason is asserted there.
 */
import type { Outcome } from '../harness.ts';
import type { Row } from '../check.ts';

export interface PathScene {
  /** Granted prefix without trailing slash, e.g. `/orders/42`. */
  readonly g: string;
  /** Forbidden path relative to the root, e.g. `orders/43`. */
  readonly f: string;
  /** How many `..` lead from G/ to the root. */
  readonly depth: number;
}

const DOTDOT = ['..', '%2e%2e', '%2E%2E', '%2e%2E', '.%2e', '%2E.', '..;', '..;x=1', '%2e%2e;jsessionid=1', '..%3b', '..%3B', '.%2E;'];
const DOT = ['.', '%2e', '%2E', '.;', '%2e;x'];
const DOUBLE = ['%252e%252e', '%252E%252E', '%25%32%65%25%32%65', '%25%32%45.', '%25252e%25252e', '%252e%252e%253b'];
const OVERLONG_DOT = ['%c0%ae%c0%ae', '%C0%AE%C0%AE', '%e0%80%ae%e0%80%ae', '%f0%80%80%ae.', '%c0%2e'];
const CONFUSABLE_DOT = ['%EF%BC%8E%EF%BC%8E', '%ef%bc%8e.', '%E2%80%A5', '%E2%80%A4%E2%80%A4', '%EF%B9%92%EF%B9%92', '%EF%BC%8E%EF%BC%8E%EF%BC%9B'];
const SLASH = ['%2F', '%2f'];
const DOUBLE_SLASH = ['%252F', '%252f', '%25%32%66', '%25252F'];
const OVERLONG_SLASH = ['%c0%af', '%C0%AF', '%e0%80%af', '%f0%80%80%af', '%c1%9c'];
const CONFUSABLE_SLASH = ['%EF%BC%8F', '%ef%bc%bc', '%EF%B9%A8', '%EF%BC%85%EF%BC%92%EF%BC%A6'];
const CONTROL = ['%00', '%0a', '%0D', '%09', '%7f', '%1b', '%C2%85', '%c2%9f'];
const BAD = ['%', '%2', '%zz', '%2g', '%%32%65', '%u002e', '%-1', '%+2'];
const BAD_UTF8 = ['%ff', '%c3', '%ed%a0%80', '%f4%90%80%80', '%e2%82', '%80', '%fe%ff'];

export function pathCorpus(s: PathScene): Row[] {
  const { g, f } = s;
  const ups = (seg: string) => Array.from({ length: s.depth }, () => seg).join('/');
  const rows: Row[] = [];
  const add = (name: string, target: string, expect: Outcome, on?: Row['on']) => rows.push({ name: `${name}: ${target.length > 60 ? `${target.slice(0, 57)}…` : target}`, target, expect, on });

  add('control: the granted path', `${g}/x`, 'granted');
  add('control: percent-encoded letters decode into the grant', `${g}/%78%2D%41`, 'granted');
  add('control: query is not matched', `${g}/x?../../${f}`, 'granted');
  add('control: ;params inside the grant', `${g}/x;jsessionid=1`, 'granted');
  add('control: three dots are a name', `${g}/.../x`, 'granted');
  add('control: valid UTF-8', `${g}/caf%C3%A9`, 'granted');
  add('outside the grant', `/${f}`, 'path_not_granted');

  for (const dd of DOTDOT) {
    add('dot-dot', `${g}/${ups(dd)}/${f}`, 'path_dot_segment');
    add('trailing dot-dot', `${g}/x/${dd}`, 'path_dot_segment');
  }
  for (const d of DOT) add('dot', `${g}/${d}/x`, 'path_dot_segment');
  add('dot-dot at the root', `/../${f}`, 'path_dot_segment');
  for (const dd of DOUBLE) add('double-encoded dot-dot', `${g}/${ups(dd)}/${f}`, 'path_double_encoding');
  for (const dd of OVERLONG_DOT) add('overlong UTF-8 dot', `${g}/${ups(dd)}/${f}`, 'path_invalid_utf8');
  for (const dd of CONFUSABLE_DOT) add('NFKC look-alike dot', `${g}/${ups(dd)}/${f}`, 'path_unicode_confusable');

  for (const sl of SLASH) add('encoded slash', `${g}/..${sl}${ups('..')}${sl}${f}`, 'path_encoded_slash');
  for (const sl of SLASH) add('encoded slash joins segments', `${g}${sl}..${sl}x`, 'path_encoded_slash');
  for (const sl of DOUBLE_SLASH) add('double-encoded slash', `${g}/x${sl}..${sl}..${sl}${f}`, 'path_double_encoding');
  for (const sl of OVERLONG_SLASH) add('overlong UTF-8 slash or backslash', `${g}/x${sl}..${sl}${f}`, 'path_invalid_utf8');
  for (const sl of CONFUSABLE_SLASH) add('NFKC look-alike slash, backslash or %XX', `${g}/x${sl}..${sl}${f}`, 'path_unicode_confusable');

  add('raw backslash', `${g}/..\\${ups('..')}\\${f}`, 'path_backslash');
  add('raw backslash only', `${g}\\..\\x`, 'path_backslash');
  for (const bs of ['%5C', '%5c']) add('encoded backslash', `${g}/..${bs}${f}`, 'path_backslash');
  for (const bs of ['%255C', '%255c', '%25%35%63']) add('double-encoded backslash', `${g}/..${bs}${f}`, 'path_double_encoding');

  for (const c of CONTROL) add('encoded control character', `${g}/x${c}/..`, 'path_control_char');
  add('encoded NUL truncation', `/${f}%00${g}`, 'path_control_char');
  add('double-encoded NUL', `${g}/x%2500`, 'path_double_encoding');
  for (const b of BAD) add('invalid percent-encoding', `${g}/x${b}`, 'path_bad_encoding');
  for (const b of BAD_UTF8) add('invalid UTF-8', `${g}/x${b}`, 'path_invalid_utf8');

  add('empty segment at the start', `/${g}`, 'path_empty_segment');
  add('empty segment inside', `${g}//x`, 'path_empty_segment');
  add('only slashes', '///', 'path_empty_segment');
  add('empty segment with a parameter', `${g}/;x/x`, 'path_empty_segment');
  add('encoded semicolon alone', `${g}/%3b/x`, 'path_empty_segment');
  add('parameter hides the segment end', `${g};/../${f}`, 'path_dot_segment');
  add('parameter on the granted segment', `${g};x`, 'path_not_granted');
  add('parameter on the forbidden path', `/${f.replace(/\/$/, '')};${g.slice(1)}`, 'path_not_granted');
  add('trailing dot on the forbidden path', `/${f.replace(/\/$/, '')}.`, 'path_not_granted');
  add('trailing dot on the granted prefix', `${g}./x`, 'path_not_granted');
  add('case-folded prefix', g.toUpperCase(), 'path_not_granted');
  add('fullwidth digits or letters are not folded into the grant', `${g}%EF%BC%A1`, 'path_not_granted');

  add('fragment', `${g}#/../${f}`, 'bad_request_target');
  add('query smuggles a path', `/${f}?${g}`, 'path_not_granted');
  add('encoded question mark then dot-dot', `${g}%3F/../${f}`, 'path_encoded_delimiter'); // the first hazard, before the dot segment
  add('not origin-form (relative)', `${g.slice(1)}`, 'bad_request_target', { ext_authz_http: 'skip' });
  add('absolute-form', `http://orders.internal${g}/x`, 'bad_request_target', { ext_authz_http: 'skip' });
  add('absolute-form, upper-case scheme', `HTTP://orders.internal${g}/x`, 'bad_request_target', { ext_authz_http: 'skip' });
  add('absolute-form to the forbidden path', `https://orders.internal/${f}`, 'bad_request_target', { ext_authz_http: 'skip' });
  add('authority-form', 'orders.internal:80', 'bad_request_target', { ext_authz_http: 'skip' });
  add('asterisk-form', '*', 'bad_request_target', { ext_authz_http: 'skip' });
  add('scheme-relative', `//orders.internal${g}/x`, 'path_empty_segment');

  add('target just over the length limit', `${g}/${'a'.repeat(8193 - g.length - 1)}`, 'path_too_long');
  add('target of 20 KB', `${g}/${'a'.repeat(20_000)}`, 'headers_too_large', { ext_authz_grpc: 'path_too_long' });
  add('raw space', `${g}/x /../${f}`, 'path_control_char');
  add('raw tab', `${g}/x\t/..`, 'path_control_char');
  add('raw NUL', `${g}/x\u0000/..`, 'path_control_char', { forward_auth: 'bad_request' });
  add('raw DEL', `${g}/x\u007f`, 'path_control_char', { forward_auth: 'bad_request' });
  // Bytes ≥ 0x80: node's parser refuses them in the request line, and jitgate answers its refusal with the
  // reason the decision core gives the same target (early-refusal.ts); a header value and a proto string carry them.
  add('raw non-UTF-8 byte', `${g}/x\u00ff`, 'path_control_char');
  add('raw UTF-8 bytes (Latin-1 view)', `${g}/caf\u00c3\u00a9`, 'path_control_char');
  add('raw overlong dot bytes', `${g}/\u00c0\u00ae\u00c0\u00ae/${f}`, 'path_control_char');
  return rows;
}

/** The gate's own scene: a token for /orders/42 and below must never reach /orders/43. */
export const GATE_SCENE: PathScene = { g: '/orders/42', f: 'orders/43', depth: 2 };
