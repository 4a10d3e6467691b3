/**
 * CPU µs per call of several pieces, best of `rounds` rounds. The rounds interleave the pieces (the
 * order reversed every other round), so a machine that slows down for a while slows all of them
 * alike; each round warms its piece up first. Process CPU (user + system), so the thread pool's
 * work for a piece counts too.
 */
export interface TimedPiece {
  readonly name: string;
  readonly f: () => unknown;
  /** Calls per measured round. */
  readonly n: number;
}

export function bestCpuMicrosPerCall(pieces: readonly TimedPiece[], rounds: number, warmup: number): Map<string, number> {
  const best = new Map<string, number>();
  for (let r = 0; r < rounds; r++) {
    for (const { name, f, n } of r % 2 === 0 ? pieces : [...pieces].reverse()) {
      for (let k = 0; k < warmup; k++) f();
      const c0 = process.cpuUsage();
      for (let k = 0; k < n; k++) f();
      const c = process.cpuUsage(c0);
      best.set(name, Math.min(best.get(name) ?? Infinity, (c.user + c.system) / n));
    }
  }
  return best;
}
