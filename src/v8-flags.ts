/**
 * V8 settings a gate process gives itself before it serves (`jitgate serve`, its cluster workers, `jitgate demo`).
 *
 * Allocation-site pretenuring off. V8 watches which allocation sites' objects survive a scavenge and, past a
 * threshold, allocates that site's objects in the old generation directly. A proxy's per-request objects live for
 * milliseconds, but a scavenge that lands while many requests are in flight can make their sites look long-lived.
 * Once they are pretenured, each request's old-space objects keep the young objects they point to alive through
 * every scavenge until the next mark-compact, so nearly everything a request allocates is copied and promoted. It
 * depends on when the first scavenges land, so a process falls into it or not: with the 1 KiB POST row of the
 * bench a gate promoted 6.2–6.9 KB per request and spent 15–43 µs per request in GC pauses; with pretenuring off,
 * 1.3–1.8 KB and 9–13 µs, and the cached GET row was unchanged (bench/README.md, "Pretenuring").
 *
 * An operator's own `--allocation-site-pretenuring` or `--no-allocation-site-pretenuring` on node's command line is
 * left alone (node refuses either in NODE_OPTIONS, so the command line is the only place for one).
 */
import { setFlagsFromString } from 'node:v8';

const PRETENURING = /allocation[-_]site[-_]pretenuring/;

/** Applies the settings this process's flags do not already decide; returns the flags it set. */
export function applyV8Flags(execArgv: readonly string[] = process.execArgv): string[] {
  const applied: string[] = [];
  if (!execArgv.some((a) => PRETENURING.test(a))) {
    setFlagsFromString('--no-allocation-site-pretenuring');
    applied.push('--no-allocation-site-pretenuring');
  }
  return applied;
}
