/**
 * The status list bytes (draft-ietf-oauth-status-list §4): `lst` is the base64url encoding of the
 * ZLIB (RFC 1950) compressed byte array; entry `idx` of `bits` bits sits at bit `idx × bits` counted
 * from the least significant bit of byte 0. Pure functions: no I/O, no clock.
 */
import { inflateSync } from 'node:zlib';
import { canonicalBase64url } from '../core/base64url.ts';

export type StatusBits = 1 | 2 | 4 | 8;

/**
 * The largest inflated list any gate accepts (the ceiling of `max_list_bytes`): 256 MiB keeps every bit
 * position (2^31 one-bit entries) within the 32-bit arithmetic of the lookup. The CLI refuses to build
 * a bigger list, since no gate could use it.
 */
export const MAX_LIST_BYTES_CEILING = 256 * 1024 * 1024;

export function isStatusBits(v: unknown): v is StatusBits {
  return v === 1 || v === 2 || v === 4 || v === 8;
}

export type LstFailure = 'status_list_encoding' | 'status_list_too_large';

/**
 * Decodes `lst` into its bytes, inflating at most `maxBytes`: a list that would inflate further
 * (a zip bomb among them) is refused, never inflated without limit.
 *
 * Exactly one encoding is accepted, so two readers of the same `lst` can never see different lists
 * (a parser differential): canonical base64url (no padding, no length ≡ 1 mod 4, zero trailing bits in
 * the last character) of exactly one complete ZLIB stream — nothing after it, not a second stream that
 * another inflater might read on.
 */
export function decodeLst(lst: string, maxBytes: number): Uint8Array | LstFailure {
  const compressed = lst.length === 0 ? undefined : canonicalBase64url(lst);
  if (compressed === undefined) return 'status_list_encoding';
  try {
    // maxOutputLength stops inflation as soon as the output would pass the bound (ERR_BUFFER_TOO_LARGE).
    const { buffer, engine } = inflateSync(compressed, { maxOutputLength: maxBytes, info: true }) as unknown as InflateInfo;
    // The engine stops at the end of the first stream: anything it did not consume is trailing data.
    if (engine.bytesWritten !== compressed.length) return 'status_list_encoding';
    return new Uint8Array(buffer);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'status_list_too_large' : 'status_list_encoding';
  }
}

/** What `inflateSync(…, { info: true })` returns (@types/node types it as a plain Buffer). */
interface InflateInfo {
  readonly buffer: Buffer;
  readonly engine: { readonly bytesWritten: number };
}

/** How many entries `byteLength` bytes hold at `bits` bits each. */
export function entryCount(byteLength: number, bits: StatusBits): number {
  return (byteLength * 8) / bits;
}

/**
 * The status of entry `idx`, or -1 when `idx` lies outside the list. No allocation: this runs for
 * every request of a cached token.
 */
export function statusAt(bytes: Uint8Array, bits: StatusBits, idx: number): number {
  if (!(idx >= 0) || idx >= (bytes.length * 8) / bits) return -1;
  const bit = idx * bits;
  return (bytes[bit >>> 3]! >>> (bit & 7)) & ((1 << bits) - 1);
}
