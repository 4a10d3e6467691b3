/**
 * A promise given a time limit: Redis commands, the trace flush at shutdown and `jitgate bench`'s requests each
 * needed one, because what they wait on (a socket, an exporter, undici) did not always bound itself.
 *
 * @module
 */

/** Settles as `p` does, or rejects with `late()` after `ms`; `p`'s own late outcome is then dropped, never unhandled. */
export function withDeadline<T>(p: Promise<T>, ms: number, late: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e instanceof Error ? e : new Error(String(e)))),
    );
  });
}
