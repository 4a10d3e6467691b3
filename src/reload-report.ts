/**
 * What one part of the gate (an issuer's key file, a revocation source) did on SIGHUP, for reload.ts to log
 * and count. Each part that re-reads anything on a signal says so itself, so the reload knows no classes.
 */
export interface ReloadReport {
  /** false: the part kept what it had (a refused file, a feed that did not sync); the reload is `ok: false`. */
  readonly ok: boolean;
  /** The log line's message; none when the part's own events already said it. */
  readonly msg?: string;
  /** Fields beside it (never a token). */
  readonly fields?: Readonly<Record<string, unknown>>;
}
