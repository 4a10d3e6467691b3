/**
 * Where a cache miss's signature check runs, chosen by measurement (bench/README.md, "Speed,
 * round two"): node:crypto's synchronous verify costs ≈ 83 µs of CPU per ES256 token, all on the
 * event loop; its callback form costs ≈ 98 µs in all but only ≈ 38 µs on the event loop, the rest
 * on a libuv pool thread. On one core per process the pool only adds work (and a hop), so `sync`
 * wins; with a spare core the event loop is the bound, so `pool` wins (≈ 1.6× the rate on two).
 */
export type VerifyMode = 'sync' | 'pool';

/**
 * `pool` only when the processes serving traffic leave a core idle for the pool's threads:
 * `workers` processes (1 without cluster mode, or 'auto' = one per core) on `cores` cores.
 */
export function chooseVerifyMode(cores: number, workers: number | 'auto'): VerifyMode {
  const processes = workers === 'auto' ? cores : workers;
  return cores > processes ? 'pool' : 'sync';
}
