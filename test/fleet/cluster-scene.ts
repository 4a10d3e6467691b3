/**
 * The clustered fleet tests' scene: a `workers: 2` gate on a fresh redis-server, with a recording
 * upstream and the admin token in a file, started as a child process — and its teardown.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRedis, type RedisServer } from '../fixtures/redis.ts';
import { spawnGate, startRecordingUpstream, stopGate, writeGateConfig, type GateProcess, type RecordingUpstream } from '../fixtures/servers.ts';

export const ADMIN_TOKEN = 'cluster-admin-token-0123456789';

export interface ClusterScene {
  readonly redis: RedisServer;
  readonly upstream: RecordingUpstream;
  readonly cfg: Awaited<ReturnType<typeof writeGateConfig>>;
  readonly gate: GateProcess;
}

/**
 * `patch` sets the config (`redis` and `admin` are filled in after it); `beforeSpawn` may rewrite the
 * written config once its directory is known.
 */
export async function startClusterScene(patch: (c: Record<string, any>) => void, beforeSpawn?: (cfg: ClusterScene['cfg']) => Promise<void>): Promise<ClusterScene> {
  const [redis, upstream] = await Promise.all([startRedis(), startRecordingUpstream()]);
  const cfg = await writeGateConfig(upstream.url, (c) => {
    c.workers = 2;
    patch(c);
    c.redis = { url: redis.url, connect_timeout: '5s' };
    c.admin = { listen: { host: '127.0.0.1', port: 0 }, token_file: 'admin-token' };
  });
  await beforeSpawn?.(cfg);
  await writeFile(join(cfg.dir, 'admin-token'), `${ADMIN_TOKEN}\n`);
  return { redis, upstream, cfg, gate: await spawnGate(cfg.file) };
}

/** Stops what a scene started (the gate it runs now, which may be a later one than it started with). */
export async function stopClusterScene(s: Partial<ClusterScene>): Promise<void> {
  await stopGate(s.gate);
  await s.upstream?.close();
  await s.redis?.remove();
  if (s.cfg) await rm(s.cfg.dir, { recursive: true, force: true });
}
