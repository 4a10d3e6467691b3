/**
 * The cores a gate sizes itself for (src/cpu-cores.ts): the OS's count lowered to the cgroup CPU quota, which
 * os.availableParallelism() does not see. Parsed from fake /proc and /sys trees, then for real: a gate started in a
 * cgroup limited to one CPU says so on its start line and checks signatures on the event loop.
 */
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupCpuQuota, usableCores, type ReadText } from '../../src/cpu-cores.ts';
import { spawnGate, startRecordingUpstream, writeGateConfig, type RecordingUpstream } from '../fixtures/servers.ts';

const fs = (files: Record<string, string>): ReadText => (p) => files[p];

describe('cgroupCpuQuota', () => {
  it('cgroup v2: cpu.max of the process cgroup; "max" is no limit', () => {
    expect(cgroupCpuQuota(fs({ '/proc/self/cgroup': '0::/kubepods/pod1/c1\n', '/sys/fs/cgroup/kubepods/pod1/c1/cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupCpuQuota(fs({ '/proc/self/cgroup': '0::/kubepods/pod1/c1\n', '/sys/fs/cgroup/kubepods/pod1/c1/cpu.max': 'max 100000\n' }))).toBeUndefined();
  });

  it('cgroup v2: the lowest limit along the path counts (a pod limit above a container without one)', () => {
    const read = fs({
      '/proc/self/cgroup': '0::/kubepods/pod1/c1',
      '/sys/fs/cgroup/kubepods/pod1/c1/cpu.max': 'max 100000',
      '/sys/fs/cgroup/kubepods/pod1/cpu.max': '50000 100000',
      '/sys/fs/cgroup/kubepods/cpu.max': '400000 100000',
    });
    expect(cgroupCpuQuota(read)).toBe(0.5);
  });

  it('cgroup v1: cfs_quota_us / cfs_period_us on the cpu controller; -1 is no limit', () => {
    const self = '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n';
    expect(cgroupCpuQuota(fs({ '/proc/self/cgroup': self, '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '200000\n', '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n' }))).toBe(2);
    expect(cgroupCpuQuota(fs({ '/proc/self/cgroup': self, '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000' }))).toBeUndefined();
  });

  it("a container without its own cgroup namespace: the host's path is not mounted, the mount's root is the container's cgroup", () => {
    const read = fs({ '/proc/self/cgroup': '4:cpu:/docker/abc', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '100000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' });
    expect(cgroupCpuQuota(read)).toBe(1);
  });

  it('nothing readable, garbage, or a path that tries to climb out: no limit, no throw', () => {
    expect(cgroupCpuQuota(fs({}))).toBeUndefined();
    expect(cgroupCpuQuota(fs({ '/proc/self/cgroup': 'garbage\n::\n' }))).toBeUndefined();
    expect(cgroupCpuQuota(fs({ '/proc/self/cgroup': '0::/a', '/sys/fs/cgroup/a/cpu.max': 'lots 100000' }))).toBeUndefined();
    const climbing = fs({ '/proc/self/cgroup': '0::/../../etc', '/sys/fs/cgroup/etc/cpu.max': '100000 100000' });
    // `..` segments are dropped, so the walk stays under the mount: /sys/fs/cgroup/etc, then /sys/fs/cgroup.
    expect(cgroupCpuQuota(climbing)).toBe(1);
  });
});

describe('usableCores', () => {
  it('the reported count, lowered to the quota rounded up, at least 1', () => {
    const quota = (q: string): ReadText => fs({ '/proc/self/cgroup': '0::/', '/sys/fs/cgroup/cpu.max': q });
    expect(usableCores(quota('max 100000'), 16)).toBe(16);
    expect(usableCores(quota('100000 100000'), 16)).toBe(1);
    expect(usableCores(quota('150000 100000'), 16)).toBe(2);
    expect(usableCores(quota('10000 100000'), 16)).toBe(1);
    expect(usableCores(quota('800000 100000'), 2)).toBe(2);
  });

  it('on this machine (no quota on the test runner): what the OS reports', () => {
    expect(usableCores()).toBe(availableParallelism());
  });
});

describe('a gate under a real CPU quota (cgroup v1 cpu controller)', () => {
  const group = `/sys/fs/cgroup/cpu/jitgate-test-${process.pid}`;
  let up: RecordingUpstream;

  beforeAll(async () => {
    if (!existsSync('/sys/fs/cgroup/cpu/cgroup.procs')) throw new Error('no cgroup v1 cpu controller at /sys/fs/cgroup/cpu: the test needs this machine type, as root');
    mkdirSync(group);
    writeFileSync(`${group}/cpu.cfs_period_us`, '100000');
    writeFileSync(`${group}/cpu.cfs_quota_us`, '100000');
    up = await startRecordingUpstream();
  });

  afterAll(async () => {
    await up?.close();
    // A cgroup is removed once no process is in it (the gate has exited by now).
    if (existsSync(group)) rmdirSync(group);
  });

  it('says cores 1 and checks signatures on the event loop, though the OS reports more cores', async () => {
    const cfg = await writeGateConfig(up.url);
    // The shell moves itself into the cgroup, then execs the gate there.
    const gate = await spawnGate(cfg.file, {}, ['sh', '-c', `echo $$ > ${group}/cgroup.procs && exec "$0" "$@"`]);
    gate.child.kill('SIGTERM');
    await gate.exited;
    expect(gate.started).toMatchObject({ cores: 1, signature_checks: 'event loop' });
  });
});
