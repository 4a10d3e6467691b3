/**
 * Pool slots (issue 21 item 8): undici queues a dispatch without bound while every connection is
 * busy, and no upstream timeout covers that wait, so slow uploads holding the pool left every other
 * client hanging. The forwarder hands undici at most `upstream.connections` exchanges; the rest wait
 * here in arrival order, each at most `upstream.connect_timeout` (the time a new connection would
 * have been allowed; the exchange then answers 504 — Envoy's and HAProxy's queue timeouts refuse the
 * same way, with 503). A free slot costs one comparison: no timer, no allocation.
 */
export interface SlotWaiter {
  /** A slot is free for it: false when it no longer wants one (timed out, client gone). */
  stopWaiting(): boolean;
}

export class PoolSlots<W extends SlotWaiter> {
  readonly #capacity: number;
  readonly #start: (waiter: W) => void;
  readonly #waiting: W[] = [];
  #active = 0;

  /** `start` runs a waiter that got a slot. */
  constructor(capacity: number, start: (waiter: W) => void) {
    this.#capacity = capacity;
    this.#start = start;
  }

  /** Takes a slot now (true), or queues `waiter` for the next free one (false). */
  take(waiter: W): boolean {
    if (this.#active < this.#capacity) {
      this.#active++;
      return true;
    }
    this.#waiting.push(waiter);
    return false;
  }

  /** A slot's holder is done: the longest-waiting waiter that still wants one gets it. */
  release(): void {
    this.#active--;
    while (this.#active < this.#capacity && this.#waiting.length > 0) {
      const w = this.#waiting.shift()!;
      if (!w.stopWaiting()) continue;
      this.#active++;
      this.#start(w);
    }
  }

  /** Drops a waiter that gave up. */
  remove(waiter: W): void {
    const i = this.#waiting.indexOf(waiter);
    if (i !== -1) this.#waiting.splice(i, 1);
  }

  get waiting(): number {
    return this.#waiting.length;
  }
}
