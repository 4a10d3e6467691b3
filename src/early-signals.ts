/**
 * Imported before anything else by the CLI entry: from here on SIGUSR1 and SIGHUP are ours, not
 * node's. Node's own meaning of SIGUSR1 is to open its inspector on 127.0.0.1:9229 — code execution
 * in the gate for anything that reaches the port — and of SIGHUP to end the process; listeners of our
 * own replace both. Installed only after the module graph loaded, a USR1 in a process's first
 * ~0.8 s (every cluster worker's start included) still opened the inspector, and a HUP in its first
 * ~1.2 s (logrotate during a restart) killed it (re-probes). Node still loads this file's few imports
 * first (about 0.2 s here): `node --disable-sigusr1` (package scripts, the image) closes that for
 * USR1. What each signal does is set later (process-signals.ts); one that came before is run then.
 */
type Early = 'SIGUSR1' | 'SIGHUP';

const handlers = new Map<Early, () => void>();
const missed = new Set<Early>();

// SIGHUP only for `serve` (cluster workers run the same argv): a terminal hanging up still ends the
// other commands, as it ends any program.
const serving = process.argv.slice(2).find((a) => !a.startsWith('-')) === 'serve';

for (const signal of serving ? (['SIGUSR1', 'SIGHUP'] as const) : (['SIGUSR1'] as const)) {
  process.on(signal, () => {
    const h = handlers.get(signal);
    if (h === undefined) missed.add(signal);
    else h();
  });
}

/** `signal` from now on runs `f`; one that came before runs it at once. */
export function onEarlySignal(signal: Early, f: () => void): void {
  handlers.set(signal, f);
  if (missed.delete(signal)) f();
}
