/**
 * Imported before anything else by the CLI entry: from here on SIGUSR1 is ours, not node's. Node's
 * own meaning is to open its inspector on 127.0.0.1:9229 — code execution in the gate for anything
 * that reaches the port — and a listener of our own replaces it; installed after the module graph
 * loaded, a USR1 in the first ~0.8 s of a process (every cluster worker's start included) still
 * opened it (a re-probe). `node --disable-sigusr1` (package scripts, the image) closes even the
 * moment before this runs; an installed package on Node 20 has only this. What USR1 does is set
 * later (process-signals.ts).
 */
let handler: (() => void) | undefined;
let missed = false;

process.on('SIGUSR1', () => {
  if (handler === undefined) missed = true;
  else handler();
});

/** SIGUSR1 from now on runs `f`; a USR1 that came before runs it at once. */
export function onSigusr1(f: () => void): void {
  handler = f;
  if (missed) {
    missed = false;
    f();
  }
}
