/**
 * How many cores this process may use. os.availableParallelism() sees the CPU affinity (taskset,
 * cpuset) but not a cgroup CPU quota: under a Kubernetes limit of 1 CPU on a 16-core node it says
 * 16 (measured here: a cgroup v1 quota of 1 CPU, Node 24, libuv 1.52 → 2 on this 2-core box). A
 * sidecar sized for 16 cores would check signatures on the thread pool, start 4 pool threads and,
 * with `workers: auto`, 16 processes, all inside one CPU's worth of time. So the quota is read
 * here, as Go's automaxprocs and the JVM do: cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
 * `cpu.cfs_period_us`, the lowest along the process's cgroup path, rounded up.
 *
 * Read once, synchronously, at start (a few small files under /proc and /sys), never per request.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Reads a file's text, or undefined when it is not there. */
export type ReadText = (path: string) => string | undefined;

const V1_MOUNTS = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/cpuacct,cpu'];
const V2_MOUNT = '/sys/fs/cgroup';

/** The CPU quota (in CPUs, possibly fractional) of the cgroup the process is in, or undefined when none is set. */
export function cgroupCpuQuota(read: ReadText): number | undefined {
  const self = read('/proc/self/cgroup');
  if (self === undefined) return undefined;
  let lowest: number | undefined;
  const take = (q: number | undefined): void => {
    if (q !== undefined && q > 0 && (lowest === undefined || q < lowest)) lowest = q;
  };
  for (const line of self.split('\n')) {
    // hierarchy-ID:controller-list:path
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first === -1 || second === -1) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (line.slice(0, first) === '0' && controllers === '') {
      for (const dir of ancestors(V2_MOUNT, path)) take(v2Quota(read(`${dir}/cpu.max`)));
    } else if (controllers.split(',').includes('cpu')) {
      for (const mount of V1_MOUNTS) for (const dir of ancestors(mount, path)) take(v1Quota(read(`${dir}/cpu.cfs_quota_us`), read(`${dir}/cpu.cfs_period_us`)));
    }
  }
  return lowest;
}

/**
 * `mount + path` and each parent up to the mount itself. Inside a container the cgroup path is often
 * the host's (no cgroup namespace) while the mount shows the container's own cgroup at its root, so
 * a path that does not exist simply yields nothing until the walk reaches the mount.
 */
function ancestors(mount: string, path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.' && p !== '..');
  const dirs: string[] = [];
  for (let n = parts.length; n >= 0; n--) dirs.push(n === 0 ? mount : `${mount}/${parts.slice(0, n).join('/')}`);
  return dirs;
}

/** `cpu.max`: "max 100000" (no limit) or "150000 100000" (1.5 CPUs). */
function v2Quota(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  return ratio(quota, period ?? '100000');
}

/** v1: a quota of -1 is no limit. */
function v1Quota(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || period === undefined) return undefined;
  return ratio(quota.trim(), period.trim());
}

function ratio(quota: string, period: string): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : undefined;
}

/** The cores the OS reports (affinity), lowered to the cgroup quota rounded up; at least 1. */
export function usableCores(read: ReadText = readIfThere, reported: number = availableParallelism()): number {
  const quota = cgroupCpuQuota(read);
  return Math.max(1, quota === undefined ? reported : Math.min(reported, Math.ceil(quota)));
}

function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

let cached: number | undefined;

/** usableCores() of this process, read once. */
export function cores(): number {
  cached ??= usableCores();
  return cached;
}
