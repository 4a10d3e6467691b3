/**
 * Files the gate will write, checked before it starts (`serve`) and by `check-config` alike: a log
 * destination or a journal that cannot be opened is a line naming its key, not an uncaught error from
 * deep inside the logger (a black-box probe saw `serve` die with SonicBoom's EISDIR stack trace and
 * `check-config` say OK). Synchronous: it runs once, before anything serves.
 */
import { accessSync, closeSync, constants, mkdirSync, openSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    // ENOTDIR: a parent is a file; the walk up the parents below names it.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * `key: problem` when `path` cannot be a file this process appends to: it exists and is not a regular
 * file (with `streams`: nor a pipe or a character device), or is not writable; or it does not exist
 * and its directory cannot hold it — missing (unless `makeDirs`: then the nearest existing ancestor
 * must be a writable directory) or not a directory.
 */
export function appendableFileProblem(key: string, path: string, makeDirs: boolean, streams = false): string | undefined {
  try {
    const full = resolve(path);
    const st = statOrUndefined(full);
    if (st !== undefined) {
      const writable = st.isFile() || (streams && (st.isFIFO() || st.isCharacterDevice()));
      if (!writable) return `${key}: ${path} is ${st.isDirectory() ? 'a directory' : streams ? 'not a regular file, a pipe or a character device' : 'not a regular file'}; expected a file to append to`;
      accessSync(full, constants.W_OK);
      return undefined;
    }
    let dir = dirname(full);
    let d = statOrUndefined(dir);
    if (d === undefined && !makeDirs) return `${key}: ${path}: the directory ${dir} does not exist`;
    while (d === undefined && dirname(dir) !== dir) {
      dir = dirname(dir);
      d = statOrUndefined(dir);
    }
    if (d === undefined || !d.isDirectory()) return `${key}: ${path}: ${dir} is not a directory, so the file cannot be created`;
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `${key}: ${path}: ${e.code ?? e.message}`;
  }
}

/**
 * `log.destination`: stdout and stderr always work; a file path is created with its directories
 * (logger.ts). A named pipe to a log shipper, `/dev/stdout` in a container or `/dev/null` are what
 * operators write too, so they pass (the audit chain reads back only a regular file).
 */
export function logDestinationProblem(destination: string): string | undefined {
  if (destination === 'stdout' || destination === 'stderr') return undefined;
  return appendableFileProblem('log.destination', destination, true, true);
}

/**
 * `serve`'s own check of `log.destination`, after logDestinationProblem: the file (and its directories)
 * really opened for appending, as the logger will. Permission bits say nothing to root, and some
 * trees refuse everyone (`/proc`, `/sys`): a gate run as root started with such a destination, wrote
 * none of its audit lines, and died on its first flush with its listeners left open (a probe). A named
 * pipe is not opened here (logger.ts opens it without waiting for a reader).
 */
export function logDestinationOpenProblem(destination: string): string | undefined {
  if (destination === 'stdout' || destination === 'stderr') return undefined;
  try {
    if (statOrUndefined(destination)?.isFIFO() === true) return undefined;
    makeDirs(dirname(resolve(destination)));
    closeSync(openSync(destination, 'a'));
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `log.destination: ${destination} cannot be opened for appending (${e.code ?? e.message})`;
  }
}

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdir never returns for a path under `/proc`
 * (it retries the ENOENT the kernel answers there): on the thread pool, where SonicBoom runs it, that
 * took the pool's one thread for good. Each missing level is made on its own; a failure is thrown.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; statOrUndefined(d) === undefined; d = dirname(d)) {
    if (dirname(d) === d) break;
    missing.push(d);
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      mkdirSync(missing[i]!);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
