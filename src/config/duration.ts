/**
 * Durations in config and CLI flags are strings such as `500ms`, `2s`, `15m`, `1h`, `1d` (SPEC §8).
 * A bare number is refused on purpose: `timeout: 30` is ambiguous (seconds? milliseconds?).
 */
const UNIT_MS: ReadonlyMap<string, number> = new Map([
  ['ms', 1],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
  ['d', 86_400_000],
]);

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (m === null) return undefined;
  const ms = Number(m[1]) * (UNIT_MS.get(m[2]!) ?? Number.NaN);
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/**
 * The longest duration a node timer takes (2^31 − 1 ms is ≈ 24.8 days; past it node fires after
 * 1 ms): durations that set a timer, in config and on the command line, are held at or under 24 days.
 */
export const TIMER_MAX_MS = 24 * 86_400_000;

/** Short human form for logs and errors: 900000 → `15m`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
