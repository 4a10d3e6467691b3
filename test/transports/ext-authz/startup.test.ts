/**
 * startExtAuthz: what starts, what is refused at startup (naming the key), trusted-proxy
 * compilation, the proto directory from src/ and dist/, and a clean close.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { StartupError } from '../../../src/errors.ts';
import { startExtAuthz } from '../../../src/transports/ext-authz/index.ts';
import { PROTO_DIR } from '../../../src/transports/ext-authz/protos.ts';
import { compileTrustedProxies } from '../../../src/transports/ext-authz/trusted-proxies.ts';
import { makeGate, makeTestKeys, type TestKeys } from '../../fixtures/gate.ts';
import { GrpcClient, httpCall, makeContext } from './helpers.ts';

let keys: TestKeys;
beforeAll(async () => {
  keys = await makeTestKeys();
});

async function start(extAuthz: Record<string, unknown>) {
  const t = await makeGate(keys, (c) => (c.ext_authz = extAuthz));
  const { ctx } = await makeContext(t);
  try {
    return { t, listeners: await startExtAuthz(ctx) };
  } catch (err) {
    t.gate.stop();
    throw err;
  }
}

const loopback = { host: '127.0.0.1', port: 0 };

describe('startup refusals', () => {
  it('forward_auth without http names both keys', async () => {
    await expect(start({ forward_auth: { path: '/forward-auth' } })).rejects.toThrow(/ext_authz\.forward_auth: .*configure ext_authz\.http/);
  });

  it('a forward-auth path an Envoy check could also carry (empty or enclosing path_prefix)', async () => {
    await expect(start({ http: { listen: loopback }, forward_auth: { path: '/forward-auth' } })).rejects.toThrow(/ext_authz\.forward_auth\.path: .* lies under ext_authz\.http\.path_prefix ""/);
    await expect(start({ http: { listen: loopback, path_prefix: '/authz' }, forward_auth: { path: '/authz/fa' } })).rejects.toThrow(StartupError);
  });

  it('a bad trusted_proxies entry names its index', async () => {
    const http = { listen: loopback, path_prefix: '/authz' };
    await expect(start({ http, forward_auth: { trusted_proxies: ['127.0.0.1/32', 'localhost'] } })).rejects.toThrow(/ext_authz\.forward_auth\.trusted_proxies\[1\]: "localhost"/);
    await expect(start({ http, forward_auth: { trusted_proxies: ['10.0.0.0/33'] } })).rejects.toThrow(/trusted_proxies\[0\].*prefix length/);
  });

  it('a port already in use is a StartupError naming the listener key', async () => {
    const a = await start({ grpc: { listen: loopback } });
    try {
      await expect(start({ grpc: { listen: { host: '127.0.0.1', port: a.listeners[0]!.port } } })).rejects.toThrow(/ext_authz\.grpc\.listen/);
    } finally {
      await a.listeners[0]!.close(0);
      a.t.gate.stop();
    }
  });
});

describe('what starts', () => {
  it('nothing when ext_authz is not configured', async () => {
    const { t, listeners } = await start({});
    expect(listeners).toEqual([]);
    t.gate.stop();
  });

  it('each service alone, and close() stops accepting', async () => {
    const g = await start({ grpc: { listen: loopback } });
    expect(g.listeners.map((l) => l.name)).toEqual(['ext_authz_grpc']);
    const client = new GrpcClient(g.listeners[0]!.port);
    expect(await client.health()).toEqual({ status: 1 });
    client.close();
    await g.listeners[0]!.close(100);
    g.t.gate.stop();

    const h = await start({ http: { listen: loopback, path_prefix: '/authz' } });
    const port = h.listeners[0]!.port;
    expect((await httpCall(port, 'GET', '/authz/healthz')).status).toBe(200);
    await h.listeners[0]!.close(100);
    await expect(httpCall(port, 'GET', '/authz/healthz')).rejects.toThrow();
    h.t.gate.stop();
  });
});

describe('trusted proxies', () => {
  const tp = compileTrustedProxies(['127.0.0.1/32', '10.1.0.0/16', '::1/128', '192.168.1.7']);
  it.each([
    ['127.0.0.1', true],
    ['::ffff:127.0.0.1', true],
    ['127.0.0.2', false],
    ['10.1.255.3', true],
    ['10.2.0.1', false],
    ['::1', true],
    ['::2', false],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['not-an-ip', false],
  ])('%s → %s', (addr, expected) => {
    expect(tp.has(addr)).toBe(expected);
  });
  it('an undefined peer (socket already gone) is never trusted', () => {
    expect(tp.has(undefined)).toBe(false);
  });
});

describe('proto directory', () => {
  it('is the package root proto/, and the same relative URL works from dist/', () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    expect(PROTO_DIR).toBe(join(root, 'proto') + '/');
    const fromDist = fileURLToPath(new URL('../../../proto/', 'file:///pkg/dist/transports/ext-authz/protos.js'));
    expect(fromDist).toBe('/pkg/proto/');
  });
});

