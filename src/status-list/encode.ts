/**
 * Building a status list (draft-ietf-oauth-status-list §4): for `jitgate status-list` and for brokers
 * and tests that use jitgate as a library. The inverse of decode.ts.
 */
import { deflateSync } from 'node:zlib';
import type { StatusBits } from './decode.ts';

/**
 * Packs `size` entries of `bits` bits (least significant first within each byte); entries not in
 * `statuses` are 0 (VALID). Throws a RangeError for an index or value that does not fit.
 */
export function packStatuses(size: number, bits: StatusBits, statuses: ReadonlyMap<number, number>): Uint8Array {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  const bytes = new Uint8Array(Math.ceil((size * bits) / 8));
  const max = (1 << bits) - 1;
  for (const [idx, value] of statuses) {
    if (!Number.isSafeInteger(idx) || idx < 0 || idx >= size) throw new RangeError(`index ${idx} is outside the list (size ${size})`);
    if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`status ${value} at index ${idx} does not fit in ${bits} bit(s)`);
    const bit = idx * bits;
    const byte = bit >>> 3;
    const shift = bit & 7;
    bytes[byte] = (bytes[byte]! & ~(max << shift)) | (value << shift);
  }
  return bytes;
}

/** `lst`: base64url of the ZLIB-compressed bytes (highest compression: lists are mostly zeros). */
export function encodeLst(bytes: Uint8Array): string {
  return deflateSync(bytes, { level: 9 }).toString('base64url');
}
