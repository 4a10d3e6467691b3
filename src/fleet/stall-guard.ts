/**
 * Tells a gate whose own process stood still (SIGSTOP, a VM or cgroup pause, a long stop-the-world
 * pause) from one whose Redis went quiet. Both look the same to the follower — no read answered for a
 * while — and a quiet Redis is ridden out until `max_stale` with the list the gate holds (SPEC §9). A
 * frozen gate is different: on waking it would answer what queued during the freeze, and what comes in
 * while its follower catches up, from a list that may be seconds behind Redis (a probe: a revocation
 * made during a 2–6 s freeze, a request sent 0.3 s after its 201 answered 200).
 *
 * A timer ticks every TICK_MS on monotonic time. A tick (or a decision) that finds the previous tick
 * more than STALL_MS ago marks a stall; the revocation source is then behind — decisions answer 503
 * `revocation_stale` — until a read sent after the stall has been answered, or CATCH_UP_MS have passed
 * (Redis may have gone away meanwhile: then `max_stale` governs again, as for any quiet Redis). Checked
 * per decision, not only on the tick: after a freeze, requests already read from their sockets are
 * decided before any timer runs.
 */

/** How often the tick runs. */
const TICK_MS = 200;
/**
 * A gap in the ticks longer than this is a stall. Well above the delays a busy event loop shows (tens
 * of ms), so a loaded gate is not taken for a frozen one; below the follower's normal cadence plus
 * command_timeout, so the freezes that matter are seen.
 */
export const STALL_MS = 1_500;
/** How long a stall keeps the source behind without an answered read: a read's BLOCK, a reconnect and a load. */
const CATCH_UP_MS = 5_000;

export class StallGuard {
  readonly #stallMs: number;
  readonly #catchUpMs: number;
  readonly #onStall: ((ms: number) => void) | undefined;
  readonly #now: () => number;
  #tickAt: number;
  /** performance.now() when the last stall was noticed; undefined once a later read was answered. */
  #stalledAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;

  /**
   * The bounds are STALL_MS and CATCH_UP_MS (tests shorten them); `onStall` is told each stall's length.
   * `now` is performance.now unless a test moves time itself: with short bounds on real time, a loaded
   * machine starving the test's own process added stalls of its own (a full suite beside other load).
   */
  constructor(options: { readonly stallMs?: number; readonly catchUpMs?: number; readonly onStall?: (ms: number) => void; readonly now?: () => number } = {}) {
    this.#stallMs = options.stallMs ?? STALL_MS;
    this.#catchUpMs = options.catchUpMs ?? CATCH_UP_MS;
    this.#onStall = options.onStall;
    this.#now = options.now ?? (() => performance.now());
    this.#tickAt = this.#now();
  }

  start(): void {
    this.#tickAt = this.#now();
    this.#timer ??= setInterval(() => {
      this.#notice(this.#now());
      this.#tickAt = this.#now();
    }, TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** True from a stall until a read sent after it is answered (at most CATCH_UP_MS). */
  get behind(): boolean {
    if (this.#timer === undefined) return false;
    const now = this.#now();
    this.#notice(now);
    if (this.#stalledAt !== undefined && now - this.#stalledAt > this.#catchUpMs) this.#stalledAt = undefined;
    return this.#stalledAt !== undefined;
  }

  /** A read sent at `askedAt` (performance.now()) was answered. */
  synced(askedAt: number): void {
    if (this.#stalledAt !== undefined && askedAt >= this.#stalledAt) this.#stalledAt = undefined;
  }

  #notice(now: number): void {
    if (now - this.#tickAt > this.#stallMs) {
      const ms = now - this.#tickAt;
      this.#stalledAt = now;
      // One stall is noticed once: the next tick measures from here.
      this.#tickAt = now;
      this.#onStall?.(ms);
    }
  }
}
