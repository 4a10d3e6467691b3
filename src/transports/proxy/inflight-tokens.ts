/**
 * Proxied requests in flight per token (`iss` + `jti`), per process (issue 21 item 8): one grant must
 * not be able to hold every upstream connection (128 slow uploads with one token starved every other
 * client). Over `limits.max_inflight_per_token` the request is refused 429 inflight_limit before
 * it is forwarded, as nginx's `limit_conn` does per key.
 *
 * Counted per issuer, then per jti: a jti is unique only within its issuer, and one issuer's tokens
 * must not use up another's slots (a black-box probe held a second issuer's token at 429 with a
 * token of the first that reused its jti). Two Map lookups, no key string built per request; the
 * outer map holds at most the configured issuers (only verified tokens are counted).
 */
export class InflightByToken {
  readonly #byIssuer = new Map<string, Map<string, number>>();
  readonly #max: number;

  /** `max` 0: no cap. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Counts the request in; false (nothing counted) when the token is at its cap. */
  enter(iss: string, jti: string): boolean {
    if (this.#max === 0) return true;
    let counts = this.#byIssuer.get(iss);
    if (counts === undefined) {
      counts = new Map();
      this.#byIssuer.set(iss, counts);
    }
    const n = counts.get(jti) ?? 0;
    if (n >= this.#max) return false;
    counts.set(jti, n + 1);
    return true;
  }

  leave(iss: string, jti: string): void {
    if (this.#max === 0) return;
    const counts = this.#byIssuer.get(iss);
    const n = counts?.get(jti);
    if (counts === undefined || n === undefined) return;
    if (n <= 1) counts.delete(jti);
    else counts.set(jti, n - 1);
  }
}
