/**
 * Imported first by the CLI entry. libuv reads UV_THREADPOOL_SIZE once, at the pool's first use,
 * and ES module files are read synchronously, so nothing has started the pool before this runs.
 * Cluster workers inherit the variable.
 */
import { cores } from '../cpu-cores.ts';
import { sizeThreadPool } from './thread-pool.ts';

sizeThreadPool(process.env, cores());
