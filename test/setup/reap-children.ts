// Runs in every test file: when the file ends (after its own afterAll hooks, see vitest.config.ts), any child
// process it started that is still alive is killed and named on stderr. A test that times out never reaches its
// own `finally`, and its gate, demo or nginx would otherwise outlive the run as an orphan holding ports and CPU.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll } from 'vitest';

/** Direct children of this process: pid and command line, from /proc (Linux; elsewhere none are found). */
function children(): { pid: number; cmd: string }[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  const out: { pid: number; cmd: string }[] = [];
  for (const p of pids) {
    try {
      // The command in field 2 may hold spaces and parentheses; the fields after the last ')' are fixed.
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // A zombie (Z) has exited already; node reaps it when it handles the SIGCHLD.
      if (Number(ppid) !== process.pid || state === 'Z') continue;
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').trim();
      // No command line: it turned into a zombie between the two reads (it is exiting on its own).
      if (cmd !== '') out.push({ pid: Number(p), cmd });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

function reap(): void {
  for (const c of children()) {
    try {
      process.kill(c.pid, 'SIGKILL');
      process.stderr.write(`[reap-children] killed pid ${c.pid}, still running when its test file ended: ${c.cmd.slice(0, 200)}\n`);
    } catch {
      // Already exited.
    }
  }
}

afterAll(reap);
// A worker that ends before its hooks finish (a hung test) still takes its children with it.
process.on('exit', reap);
