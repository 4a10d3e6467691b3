/**
 * Problems the parts around the gate report while it stays ready, for /readyz to list beside the
 * gate's own (a refused revocation or key reload is shown the same way): today a TLS listener or
 * the upstream connector whose files changed but do not load, so the previous certificate is still
 * served and may run out. Each part owns one key, sets it when the problem starts and clears it
 * when the problem ends; the board never makes the gate unready.
 */
export class ProblemBoard {
  readonly #problems = new Map<string, string>();

  set(key: string, problem: string): void {
    this.#problems.set(key, problem);
  }

  clear(key: string): void {
    this.#problems.delete(key);
  }

  list(): string[] {
    return [...this.#problems.values()];
  }
}
