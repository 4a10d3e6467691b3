/**
 * The request's authority (Host, `:authority`, X-Forwarded-Host): exactly one, and a valid
 * `host [":" port]` (RFC 9112 §3.2, RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3). Backends that build
 * their URL from Host + target (fetch-style adapters, framework request objects) would otherwise
 * route `Host: orders.internal/admin?` + `/orders/42` to `/admin` — a path the grant never covered.
 *
 * Stricter than RFC 3986 where a real host name never needs the room (all documented in
 * docs/hardening-edges.md; every choice refuses, none widens):
 * - reg-name is the DNS subset: letters, digits, `-`, `_`, `~` and `.`; no pct-encoding and no
 *   sub-delims (`!$&'()*+,;=`), which no resolver accepts and a URL builder may read as structure.
 *   Labels are non-empty (no leading dot, no `..`); one trailing dot (a rooted FQDN) is allowed.
 *   At most 253 characters (plus that dot).
 * - A reg-name whose last label is numeric (or hex, `0x…`) is read as IPv4 by WHATWG URL parsers
 *   (`0x7f.1` → 127.0.0.1), so it must be a plain dotted quad: four decimals 0–255, no leading zeros.
 * - IPv6 only in brackets, as node:net's isIPv6 accepts it, without a zone (`%25eth0`); IPvFuture
 *   (`[v1.x]`) is refused.
 * - The port, when the `:` is there, is 1–5 digits up to 65535 without a leading zero (`host:080`
 *   is port 80 to a URL builder and `host:080` to a router that compares text); an empty port
 *   (`host:`) is refused.
 * - The empty value is refused (RFC 9110 allows it only for a target without authority, which
 *   origin-form requests to this gate never are).
 *
 * Pure and allocation-free on the valid path (one scan of the value).
 *
 * @module
 */
import { isIPv6 } from 'node:net';

/** Why an authority is refused (400); codes match `reasons.ts`. */
export type AuthorityReason = 'missing_host' | 'multiple_host' | 'invalid_host';

const MAX_NAME = 253;

/** reg-name characters jitgate accepts (the DNS subset of RFC 3986 unreserved). */
const NAME_CHAR = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~.') NAME_CHAR[ch.charCodeAt(0)] = 1;

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/**
 * The refusal for an authority given `count` times with (last) value `value`, or undefined when it is
 * exactly one valid authority. `count` 0 or `value` undefined → missing_host.
 */
export function authorityRefusal(value: string | undefined, count: number): AuthorityReason | undefined {
  if (count > 1) return 'multiple_host';
  if (count === 0 || value === undefined) return 'missing_host';
  return isValidAuthority(value) ? undefined : 'invalid_host';
}

/** Whether `s` is `host [":" port]` with host a reg-name, dotted-quad IPv4 or bracketed IPv6 (see the module rules). */
export function isValidAuthority(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  let hostEnd: number;
  if (s.charCodeAt(0) === 0x5b /* [ */) {
    const close = s.indexOf(']');
    if (close === -1) return false;
    const inner = s.slice(1, close);
    // isIPv6 also accepts a zone (`fe80::1%eth0`); a zone is never part of a Host header.
    if (inner.includes('%') || !isIPv6(inner)) return false;
    hostEnd = close + 1;
    if (hostEnd !== n && s.charCodeAt(hostEnd) !== 0x3a) return false;
  } else {
    hostEnd = s.indexOf(':');
    if (hostEnd === -1) hostEnd = n;
    if (!isRegNameOrIPv4(s, hostEnd)) return false;
  }
  return hostEnd === n || isPort(s, hostEnd + 1);
}

function isPort(s: string, from: number): boolean {
  const len = s.length - from;
  if (len < 1 || len > 5) return false;
  if (len > 1 && s.charCodeAt(from) === 0x30) return false; // no leading zero: one spelling per port
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isDigit(c)) return false;
    v = v * 10 + (c - 0x30);
  }
  return v <= 65535;
}

/** `s[0, end)` as a reg-name (labels of NAME_CHAR, optional trailing dot); a numeric last label must make it IPv4. */
function isRegNameOrIPv4(s: string, end: number): boolean {
  let stop = end;
  if (stop > 1 && s.charCodeAt(stop - 1) === 0x2e) stop--; // one trailing dot: a rooted name
  if (stop === 0 || stop > MAX_NAME) return false;
  let labelStart = 0;
  for (let i = 0; i < stop; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || NAME_CHAR[c] !== 1) return false;
    if (c === 0x2e) {
      if (i === labelStart) return false; // empty label: leading dot or `..`
      labelStart = i + 1;
    }
  }
  if (labelStart === stop) return false; // ends in `..`
  return numericLabel(s, labelStart, stop) ? isDottedQuad(s, 0, stop) : true;
}

/** WHATWG URL's "ends in a number": the last label is all digits, or `0x`/`0X` and hex digits. */
function numericLabel(s: string, from: number, to: number): boolean {
  let allDigits = true;
  for (let i = from; i < to; i++) if (!isDigit(s.charCodeAt(i))) allDigits = false;
  if (allDigits) return true;
  if (to - from < 2 || s.charCodeAt(from) !== 0x30 || (s.charCodeAt(from + 1) | 0x20) !== 0x78) return false;
  for (let i = from + 2; i < to; i++) {
    const c = s.charCodeAt(i) | 0x20;
    if (!isDigit(c) && !(c >= 0x61 && c <= 0x66)) return false;
  }
  return true;
}

/** Four decimal octets 0–255 without leading zeros (which WHATWG would read as octal). */
function isDottedQuad(s: string, from: number, to: number): boolean {
  let parts = 0;
  let i = from;
  while (i <= to) {
    let v = 0;
    let digits = 0;
    const start = i;
    while (i < to && isDigit(s.charCodeAt(i))) {
      v = v * 10 + (s.charCodeAt(i) - 0x30);
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || v > 255 || (digits > 1 && s.charCodeAt(start) === 0x30)) return false;
    parts++;
    if (i === to) break;
    if (s.charCodeAt(i) !== 0x2e) return false;
    i++;
  }
  return parts === 4;
}
