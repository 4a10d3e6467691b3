/**
 * Where a cache miss's signature check runs, chosen by measurement (bench/README.md, "Speed,
 * round two"): node:crypto's synchronous verify costs ≈ 83 µs of CPU per ES256 token, all on the
 * event loop; its callback form costs ≈ 98 µs in all but only ≈ 38 µs on the event loop, the rest
 * on a libuv pool thread. On one core per process the pool only adds work (and a hop), so the
 * event loop checks; with a spare core the event loop is the bound, so `pool` wins (≈ 1.6× the
 * rate on two).
 *
 * - `sync`: checked where the miss is decided, before the call returns (tests, micro benches).
 * - `batch`: checked on the event loop too, but the misses of one loop turn are queued and checked
 *   back to back in a setImmediate, then each request goes on. OpenSSL's P-256 tables and the
 *   proxy's JavaScript then stop evicting each other from the CPU caches once per request:
 *   paired CPU on the rotating-token row fell from 1.288 / 1.283 × to 1.220 / 1.208 × the minimal
 *   sync-verify gate (bench/README.md, "Round two, last"). What a served gate uses on one core.
 * - `pool`: node:crypto's callback form, on libuv's thread pool.
 */
export type VerifyMode = 'sync' | 'batch' | 'pool';

/**
 * `pool` only when the processes serving traffic leave a core idle for the pool's threads:
 * `workers` processes (1 without cluster mode, or 'auto' = one per core) on `cores` cores.
 */
export function chooseVerifyMode(cores: number, workers: number | 'auto'): VerifyMode {
  const processes = workers === 'auto' ? cores : workers;
  return cores > processes ? 'pool' : 'batch';
}
