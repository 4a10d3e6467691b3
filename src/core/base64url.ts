/**
 * Canonical unpadded base64url (RFC 4648 §5), for values compared or read as text by others: the
 * bytes, when `text` is the one spelling Buffer re-encodes them to, else undefined. The round trip
 * refuses everything Buffer's decoder forgives — padding, whitespace, `+` and `/`, stray characters,
 * a length ≡ 1 (mod 4), non-zero trailing bits — so two readers cannot see different bytes.
 */
export function canonicalBase64url(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}
