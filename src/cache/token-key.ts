/**
 * The key both token caches (verified tokens, refused forgeries) file a token under: its last 43 characters, which
 * lie inside the signature, so keys spread evenly without hashing. Each cache stores the whole token beside its
 * entry and compares it on a hit: a key is where to look, never proof of identity.
 */
const KEY_CHARS = 43;

/** The token's last KEY_CHARS characters (the whole of a shorter string). */
export function tokenCacheKey(token: string): string {
  return token.length > KEY_CHARS ? token.slice(token.length - KEY_CHARS) : token;
}
