/**
 * "Seen recently?" for cache admission, in fixed memory and without allocation: a Bloom filter
 * (three bit positions per key from one FNV-1a hash) over the last `window` keys, cleared when the
 * window is full — TinyLFU's doorkeeper (Einziger et al., 2017; Caffeine, Ristretto). A false
 * "seen" (≈ 0.5 % at a full window) only admits a token early; it never decides access.
 */
export class Doorkeeper {
  readonly #bits: Uint32Array;
  readonly #mask: number;
  readonly #window: number;
  #added = 0;

  /** Remembers up to `window` keys; 16 bits per key keep false positives near 0.5 %. */
  constructor(window: number) {
    let size = 32;
    while (size < window * 16) size *= 2;
    this.#bits = new Uint32Array(size / 32);
    this.#mask = size - 1;
    this.#window = window;
  }

  /** True when `key` was offered since the last clear; otherwise remembers it and answers false. */
  seenBefore(key: string): boolean {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    // FNV's low bits are weakly mixed (each is a function of the low bits before it): finish with
    // murmur3's mixer, then three positions from two hashes (Kirsch–Mitzenmacher: h1 + i·h2).
    h = fmix(h);
    const h2 = fmix(h ^ 0x5bd1e995) | 1;
    const mask = this.#mask;
    const a = h & mask;
    const b = (h + h2) & mask;
    const c = (h + 2 * h2) & mask;
    const bits = this.#bits;
    if (has(bits, a) && has(bits, b) && has(bits, c)) return true;
    if (++this.#added > this.#window) {
      bits.fill(0);
      this.#added = 1;
    }
    bits[a >>> 5]! |= 1 << (a & 31);
    bits[b >>> 5]! |= 1 << (b & 31);
    bits[c >>> 5]! |= 1 << (c & 31);
    return false;
  }
}

function has(bits: Uint32Array, i: number): boolean {
  return (bits[i >>> 5]! & (1 << (i & 31))) !== 0;
}

/** murmur3's 32-bit finalizer: every input bit reaches every output bit. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
