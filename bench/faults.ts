/**
 * Issue 21's fault measurements at full scale, against an in-process gate with the default config
 * (upstream.connections 128, connect_timeout 2s, limits.max_inflight_per_token 64):
 *   node bench/faults.ts        (npx node … for Node 24; not part of `npm test`)
 * A. 128 slow uploads (Content-Length 100000, 1 byte/s) with one token, then 20 GETs with other
 *    tokens: how many GETs are answered within 10 s, and the slowest.
 * B. A backend that never answers, upstream.headers_timeout 5s, 200 clients: the slowest answer.
 * C. 20,000 pipelined GETs with a valid token on one connection that is never read: how many the
 *    gate forwarded after 5 s (upstream answers 64 KiB).
 */
import { connect } from 'node:net';
import { send, startGateInProcess, startRecordingUpstream } from '../test/fixtures/servers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const GRANT = [{ type: 'jit_grant', actions: ['POST', 'GET'], locations: ['https://orders.internal'], paths: ['/orders/**'] }];

async function uploads(): Promise<void> {
  const up = await startRecordingUpstream();
  const gate = await startGateInProcess(up.url, (c) => (c.grant.actions = { write: ['POST'] }));
  const slow = await gate.token({ jti: 'uploader', authorization_details: GRANT });
  const port = Number(new URL(gate.url).port);
  const held = Array.from({ length: 128 }, () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.write(`POST /orders/42 HTTP/1.1\r\nHost: orders.internal\r\nAuthorization: Bearer ${slow}\r\nContent-Length: 100000\r\n\r\n`);
    return { s, t: setInterval(() => s.write('x'), 1000) };
  });
  await sleep(1500);
  const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => gate.token({ jti: `reader-${i}` })));
  const t0 = performance.now();
  const got = await Promise.all(
    tokens.map((t) =>
      Promise.race([
        send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${t}` } }).then((r) => ({ status: r.status, ms: performance.now() - t0 })),
        sleep(10_000).then(() => ({ status: 0, ms: 10_000 })),
      ]),
    ),
  );
  const answered = got.filter((g) => g.status !== 0);
  console.log(`A. 128 slow uploads + 20 GETs: ${answered.length}/20 answered (${[...new Set(answered.map((a) => a.status))].join(',') || '-'}), slowest ${Math.max(...got.map((g) => g.ms)).toFixed(0)} ms; upstream saw ${up.requests.length} requests`);
  for (const h of held) {
    clearInterval(h.t);
    h.s.destroy();
  }
  await gate.close();
  await up.close();
}

async function hanging(): Promise<void> {
  const up = await startRecordingUpstream();
  up.respond = () => undefined;
  const gate = await startGateInProcess(up.url, (c) => (c.upstream = { url: c.upstream.url, headers_timeout: '5s' }));
  const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => gate.token({ jti: `client-${i}` })));
  const t0 = performance.now();
  const got = await Promise.all(tokens.map((t) => send(gate.url, '/orders/42', { headers: { authorization: `Bearer ${t}` } }).then((r) => ({ status: r.status, ms: performance.now() - t0 }))));
  console.log(`B. hanging backend, headers_timeout 5s, 200 clients: statuses ${[...new Set(got.map((g) => g.status))].join(',')}, slowest ${Math.max(...got.map((g) => g.ms)).toFixed(0)} ms`);
  await gate.close();
  await up.close();
}

async function pipelined(): Promise<void> {
  const up = await startRecordingUpstream();
  const body = Buffer.alloc(64 * 1024, 'a');
  up.respond = (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
  const gate = await startGateInProcess(up.url, (c) => (c.limits = { max_inflight_per_connection: 1_000_000 }));
  const t = await gate.token({ jti: 'pipeliner' });
  const s = connect(Number(new URL(gate.url).port), '127.0.0.1');
  s.on('error', () => undefined);
  s.pause();
  s.write(`GET /orders/42 HTTP/1.1\r\nHost: orders.internal\r\nAuthorization: Bearer ${t}\r\n\r\n`.repeat(20_000));
  await sleep(5000);
  console.log(`C. 20,000 pipelined GETs, client not reading: ${up.requests.length} forwarded after 5 s`);
  s.destroy();
  await gate.close();
  await up.close();
}

await uploads();
await hanging();
await pipelined();
