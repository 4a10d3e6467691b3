/**
 * At most `limit` status-list fetches in flight per origin (scheme, host, port); the rest wait their
 * turn in order. Without it, every failing list of one publisher fetched on its own schedule: a
 * reviewer's 11,726 lists of one origin made 27k sockets to it.
 *
 * A semaphore rather than an undici Agent with `connections`: the Agent drops an origin's pool when its
 * last connection closes and opens a new one for the next request while the old pool still drains its
 * queue, so against a publisher that refuses connections or closes them after each answer (the failing
 * one this is for) the limit did not hold (a test saw it exceeded).
 */
export class OriginSlots {
  readonly limit: number;
  readonly #origins = new Map<string, { active: number; readonly waiting: (() => void)[] }>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Runs `fn` once one of the origin's slots is free; the slot is held until its promise settles. */
  async run<T>(origin: string, fn: () => Promise<T>): Promise<T> {
    const o = this.#origins.get(origin) ?? { active: 0, waiting: [] };
    this.#origins.set(origin, o);
    if (o.active < this.limit) o.active++;
    else await new Promise<void>((resolve) => o.waiting.push(resolve)); // the slot is handed over, still counted
    try {
      return await fn();
    } finally {
      const next = o.waiting.shift();
      if (next !== undefined) next();
      else if (--o.active === 0) this.#origins.delete(origin);
    }
  }

  /** Fetches in flight to `origin` (for tests). */
  active(origin: string): number {
    return this.#origins.get(origin)?.active ?? 0;
  }
}
