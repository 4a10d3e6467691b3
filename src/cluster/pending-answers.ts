/**
 * Requests a cluster worker sends to its primary and the answers it waits for, matched by id. An
 * answer that does not come within the timeout rejects; one that comes later is dropped. Shared by
 * every worker → primary request that needs an answer (anomaly revocations and counts).
 */
export class PendingAnswers<T> {
  readonly #pending = new Map<number, { resolve: (value: T) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  readonly #timeoutMs: number;
  #id = 0;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** Sends through `send(id)` and waits for `settle(id, …)`; a throwing `send` rejects at once. */
  ask(send: (id: number) => void): Promise<T> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the cluster primary did not answer within ${this.#timeoutMs / 1000}s`));
      }, this.#timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      try {
        send(id);
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(err as Error);
      }
    });
  }

  /** The answer to request `id`: a value, or the error it carries. Unknown or late ids are ignored. */
  settle(id: number, outcome: { value: T } | { error: Error }): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in outcome) p.reject(outcome.error);
    else p.resolve(outcome.value);
  }
}
