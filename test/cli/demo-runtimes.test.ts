/**
 * What `jitgate demo` relies on to run its plain and mTLS gates in one process: two runtimes share no
 * state — each counts its own decisions in its own registry — starting them installs no signal handler
 * (the demo installs one pair), and a logger passed to both writes each gate's lines, the second's
 * marked `gate: "mtls"`. And a taken --tls-port stops the demo with exit 1 and a hint, closing what it
 * had started.
 */
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';
import { startDemoBackend, type DemoBackend } from '../../src/demo/backend.ts';
import { startJitgateWorker, type WorkerRunning } from '../../src/runtime.ts';
import { runCli } from '../fixtures/cli.ts';
import { tempDir } from '../fixtures/keys.ts';
import { startGateInProcess, tokenNow, writeGateConfig, type InProcessGate } from '../fixtures/servers.ts';

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

describe('two gate runtimes in one process (the demo\'s plain and mTLS gates)', () => {
  let backend: DemoBackend | undefined;
  let first: InProcessGate | undefined;
  let second: WorkerRunning | undefined;
  const dirs: string[] = [];
  afterAll(async () => {
    await second?.close(0);
    await first?.close();
    await backend?.close();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('keep their own metrics, install no signal handlers, and share a logger as the demo does', async () => {
    const listeners = SIGNALS.map((s) => process.listenerCount(s));
    backend = await startDemoBackend();
    first = await startGateInProcess(backend.url);
    dirs.push(first.dir);
    const other = await writeGateConfig(backend.url);
    dirs.push(other.dir);
    second = await startJitgateWorker(validateConfig(other.raw, other.file), other.file, { logger: first.running.logger.child({ gate: 'mtls' }), defaultMetrics: false });
    expect(SIGNALS.map((s) => process.listenerCount(s))).toEqual(listeners);

    const toFirst = await fetch(`${first.url}/orders/42`, { headers: { authorization: `Bearer ${await first.token()}` } });
    await toFirst.body?.cancel();
    expect(toFirst.status).toBe(200);
    const toSecond = await fetch(`http://127.0.0.1:${second.listeners.proxy.port}/orders/42`, { headers: { authorization: `Bearer ${await tokenNow(other.keys)}` } });
    await toSecond.body?.cancel();
    expect(toSecond.status).toBe(200);
    const unauthenticated = await fetch(`http://127.0.0.1:${second.listeners.proxy.port}/orders/42`);
    await unauthenticated.body?.cancel();
    expect(unauthenticated.status).toBe(401);

    const granted = /jitgate_decisions_total\{transport="proxy",result="allow",reason="granted"\} (\d+)/;
    const missing = /reason="missing_token"\} [1-9]/;
    const firstText = await first.running.metrics.metrics();
    const secondText = await second.metrics.metrics();
    expect([granted.exec(firstText)?.[1], granted.exec(secondText)?.[1]]).toEqual(['1', '1']);
    expect([missing.test(firstText), missing.test(secondText)]).toEqual([false, true]);
    // Node's process metrics are in the first registry only.
    expect([firstText.includes('jitgate_process_cpu'), secondText.includes('jitgate_process_cpu')]).toEqual([true, false]);

    await new Promise<void>((resolve) => first!.running.logger.flush(() => resolve()));
    const audits = first.logs.filter((l) => l.type === 'audit').map((l) => [l.gate ?? 'plain', l.reason]);
    expect(audits).toEqual(expect.arrayContaining([['plain', 'granted'], ['mtls', 'granted'], ['mtls', 'missing_token']]));
    expect(audits.filter(([gate]) => gate === 'plain')).toEqual([['plain', 'granted']]);
  });
});

describe('jitgate demo with its --tls-port taken', () => {
  it('exits 1 naming --tls-port and --no-mtls, having closed the gate and backend it started', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const dir = await tempDir('jitgate-demo-tlsport-');
      const r = await runCli(['demo', '--port', '0', '--admin-port', '0', '--tls-port', String(port), '--dir', dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE|in use/i);
      expect(r.stderr).toContain('--tls-port');
      expect(r.stderr).toContain('--no-mtls');
      expect(r.stdout).not.toContain('jitgate demo is running');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
