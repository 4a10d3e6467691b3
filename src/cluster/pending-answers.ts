/**
 * Requests a cluster worker sends to its primary and the answers it waits for, matched by id. An
 * answer that does not come within the timeout rejects; one that comes later is dropped. Shared by
 * every worker → primary request that needs an answer (DPoP proof records, anomaly revocations and
 * counts).
 */

/** The worker's end of the IPC channel, for messages of type `Out`. */
export interface ToPrimary<Out> {
  send(message: Out): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

/** What `read` makes of a message from the primary: the answer to request `id`, or not one of ours. */
export type Answer<T> = { readonly id: number; readonly value: T } | { readonly id: number; readonly error: Error } | undefined;

export class PendingAnswers<T, Out> {
  readonly #channel: ToPrimary<Out>;
  readonly #pending = new Map<number, { resolve: (value: T) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  readonly #timeoutMs: number;
  #id = 0;

  constructor(channel: ToPrimary<Out>, timeoutMs: number, read: (message: unknown) => Answer<T>) {
    this.#channel = channel;
    this.#timeoutMs = timeoutMs;
    channel.on('message', (message) => {
      const a = read(message);
      if (a !== undefined) this.#settle(a);
    });
  }

  /** Sends the request `build(id)` makes and waits for its answer; a throwing send rejects at once. */
  ask(build: (id: number) => Out): Promise<T> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the cluster primary did not answer within ${this.#timeoutMs / 1000}s`));
      }, this.#timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.#channel.send(build(id));
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(err as Error);
      }
    });
  }

  /** A message that needs no answer. */
  tell(message: Out): void {
    this.#channel.send(message);
  }

  #settle(a: NonNullable<Answer<T>>): void {
    const p = this.#pending.get(a.id);
    if (p === undefined) return;
    this.#pending.delete(a.id);
    clearTimeout(p.timer);
    if ('error' in a) p.reject(a.error);
    else p.resolve(a.value);
  }
}
