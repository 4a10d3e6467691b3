/**
 * Proxied requests in flight per token (`jti`), per process (issue 21 item 8): one grant must not
 * be able to hold every upstream connection (128 slow uploads with one token starved every other
 * client). Over `limits.max_inflight_per_token` the request is refused 429 inflight_limit before
 * it is forwarded, as nginx's `limit_conn` does per key. Keyed by jti alone: no string is built
 * per request, and jtis of different issuers that collide only share a count (stricter, never looser).
 */
export class InflightByToken {
  readonly #counts = new Map<string, number>();
  readonly #max: number;

  /** `max` 0: no cap. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Counts the request in; false (nothing counted) when the token is at its cap. */
  enter(jti: string): boolean {
    if (this.#max === 0) return true;
    const n = this.#counts.get(jti) ?? 0;
    if (n >= this.#max) return false;
    this.#counts.set(jti, n + 1);
    return true;
  }

  leave(jti: string): void {
    if (this.#max === 0) return;
    const n = this.#counts.get(jti);
    if (n === undefined) return;
    if (n <= 1) this.#counts.delete(jti);
    else this.#counts.set(jti, n - 1);
  }

  get size(): number {
    return this.#counts.size;
  }
}
