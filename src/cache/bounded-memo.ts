/**
 * A memo of values computed from a key (parsed certificates, compiled patterns, decoded headers), bounded
 * by emptying it when full: no bookkeeping per lookup, and a stream of distinct keys (an attacker's
 * certificates, a flood of headers) costs what it did without the memo plus one insert each, never memory.
 */
export class BoundedMemo<K, V> {
  readonly #map = new Map<K, V>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Remembers `value` for `key` (emptying the memo first when it is full) and returns it. */
  set(key: K, value: V): V {
    if (this.#map.size >= this.#max) this.#map.clear();
    this.#map.set(key, value);
    return value;
  }

  get size(): number {
    return this.#map.size;
  }
}
