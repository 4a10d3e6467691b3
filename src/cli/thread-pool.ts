/**
 * The size of libuv's thread pool. Every uncached token's signature is checked there (jose →
 * WebCrypto), and audit lines are written there. libuv's default of 4 threads oversubscribes the
 * one or two cores a sidecar usually gets: with the event loop, 4 verifying threads and the
 * neighbours on 2 cores, context switches ate a quarter of the cold path's CPU (bench/README.md,
 * "What was tried"). One thread per core beside the event loop's is enough.
 */

/** libuv's own default, kept as the ceiling: more threads than this never helped a gate. */
const LIBUV_DEFAULT = 4;

export function threadPoolSize(cores: number): number {
  return Math.max(1, Math.min(LIBUV_DEFAULT, cores - 1));
}

/** Sets UV_THREADPOOL_SIZE from the core count unless the operator set it. */
export function sizeThreadPool(env: NodeJS.ProcessEnv, cores: number): void {
  if (env.UV_THREADPOOL_SIZE === undefined || env.UV_THREADPOOL_SIZE === '') env.UV_THREADPOOL_SIZE = String(threadPoolSize(cores));
}
