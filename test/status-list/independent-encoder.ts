/**
 * A second status list encoder, written from the draft's text (draft-ietf-oauth-status-list §4.1)
 * without jitgate's code: statuses are laid down bit by bit, least significant bit first, and the
 * bytes compressed through the web CompressionStream ('deflate' is the ZLIB format, RFC 1950) rather
 * than node:zlib's deflateSync.
 */
export async function independentLst(values: readonly number[], bits: number): Promise<string> {
  const totalBits = values.length * bits;
  const bytes = new Uint8Array(Math.ceil(totalBits / 8));
  values.forEach((value, i) => {
    for (let b = 0; b < bits; b++) {
      if (((value >> b) & 1) === 1) {
        const position = i * bits + b;
        bytes[Math.floor(position / 8)]! |= 1 << position % 8;
      }
    }
  });
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('deflate'));
  const compressed = new Uint8Array(await new Response(stream).arrayBuffer());
  let binary = '';
  for (const c of compressed) binary += String.fromCharCode(c);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Reads status `i` back the same way, from the inflated bytes. */
export function independentStatus(bytes: Uint8Array, bits: number, i: number): number {
  let value = 0;
  for (let b = 0; b < bits; b++) {
    const position = i * bits + b;
    if ((bytes[Math.floor(position / 8)]! >> position % 8) & 1) value |= 1 << b;
  }
  return value;
}
