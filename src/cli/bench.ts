/**
 * `jitgate bench`: load any deployed gate — jitgate, or another product in front of the same backend — with grant
 * tokens minted from a key, check every answer against what a working gate must say, and print a table. Exit 0 when
 * every answer was the expected one, 1 when any was not (or a request got no answer, or a kind of the mix was never
 * sent), 2 on a usage error, 130 when interrupted (SIGINT: what was measured until then is still printed and written).
 *
 * @module
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { JWK } from 'jose';
import { readKeyFile } from '../issuing/key-files.ts';
import { schedule } from '../loadgen/mix.ts';
import { jsonReport, markdownReport, textReport, verdict } from '../loadgen/report.ts';
import { prepareRequests } from '../loadgen/requests.ts';
import { runLoad } from '../loadgen/run-load.ts';
import { benchSettings, MAX_CONNECTIONS, MAX_TOKENS, type BenchSettings } from '../loadgen/settings.ts';
import { caBundleProblem } from '../transports/tls/ca-bundle.ts';
import { commandUsageError, parseCommand } from './args.ts';

const USAGE = `Usage: jitgate bench --target URL --key FILE --iss ISS --aud AUD [options]

Load a gate with freshly minted grant tokens and check every answer.

  --target URL        the gate's origin (or any product in front of the backend), e.g. http://127.0.0.1:8080;
                      http:// or https://
  --ca FILE           PEM CA certificate(s) for an https:// target (default: Node's bundled roots)
  --key FILE          private JWK that the gate trusts (as written by jitgate keys)
  --iss ISS           token issuer
  --aud AUD           token audience (the gate's service.audience)
  --sub SUB           token subject (default spiffe://jitgate-bench/load)
  --action METHOD     HTTP method of every request, and the grant's action (default GET)
  --path PATH         request path; the grant covers it and everything below it (default /); a "*" segment
                      is a wildcard in the grant (SPEC §1) and a literal "*" in the requests
  --outside-path PATH path for "outside" requests, outside the grant (default /jitgate-bench-outside; with
                      outside in the mix, --path must not cover it, so the default --path / cannot be used)
  --tokens N          distinct tokens in rotation for each kind that carries one (default 100, at most ${MAX_TOKENS})
  --ttl DURATION      token lifetime (default 10m; keep it within the issuer's max_ttl)
  --mix SPEC          kinds and weights (default allow=100); kinds: allow (expects 2xx), outside (403),
                      bad-signature (401), no-token (401), expired (401); e.g. allow=90,outside=5,bad-signature=5
  --duration DURATION how long to send (default 10s)
  --connections N     keep-alive connections (default 10, at most ${MAX_CONNECTIONS})
  --rate N            offered requests per second over all connections, open loop: latency counts from when
                      each request fell due (default: closed loop, as fast as answered)
  --timeout DURATION  per-request answer timeout (default 10s)
  --header 'K: V'     an extra header on every request (repeatable), e.g. a Host
  --json FILE         also write the full result as JSON
  --markdown FILE     also write the table as Markdown
  -h, --help          show this help
`;

const OPTIONS = {
  target: { type: 'string' },
  ca: { type: 'string' },
  key: { type: 'string' },
  iss: { type: 'string' },
  aud: { type: 'string' },
  sub: { type: 'string' },
  action: { type: 'string' },
  path: { type: 'string' },
  'outside-path': { type: 'string' },
  tokens: { type: 'string' },
  ttl: { type: 'string' },
  mix: { type: 'string' },
  duration: { type: 'string' },
  connections: { type: 'string' },
  rate: { type: 'string' },
  timeout: { type: 'string' },
  header: { type: 'string', multiple: true },
  json: { type: 'string' },
  markdown: { type: 'string' },
} as const;

const usageError = (message: string): number => commandUsageError('bench', message);
const fail = (message: string): number => {
  process.stderr.write(`jitgate bench: ${message}\n`);
  return 1;
};

/** Tokens minted before the load; off a terminal a large batch is said once, as it can take a while. */
const SAY_MINTING_FROM = 1000;

export async function run(argv: string[]): Promise<number> {
  const v = parseCommand(argv, OPTIONS, USAGE, usageError);
  if (typeof v === 'number') return v;
  let args: BenchSettings;
  try {
    args = await benchSettings(v);
  } catch (err) {
    return usageError((err as Error).message);
  }
  let key: JWK;
  let ca: string | undefined;
  try {
    key = await readKeyFile(args.keyFile);
    if (args.caFile !== undefined) {
      const pem = await readFile(args.caFile).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`--ca ${args.caFile}: cannot read it (${err.code ?? err.message})`);
      });
      // The listeners' own check (garbage read as "no CA" blamed the target).
      const problem = caBundleProblem(pem);
      if (problem !== undefined) throw new Error(`--ca ${args.caFile}: ${problem}`);
      ca = pem.toString('utf8');
    }
  } catch (err) {
    return fail((err as Error).message);
  }

  const tty = process.stderr.isTTY === true;
  const progress = (line: string): void => {
    if (tty) process.stderr.write(`\r\x1b[K${line}`);
  };
  let requests: Awaited<ReturnType<typeof prepareRequests>>;
  try {
    requests = await prepareRequests({ ...args.grant, key }, args.info.kinds, args.tokens, (done, total) => {
      if (done === 1 && !tty && total >= SAY_MINTING_FROM) process.stderr.write(`jitgate bench: minting ${total} tokens\n`);
      if (done % 50 === 0 || done === total) progress(`minting tokens ${done}/${total}`);
    });
  } catch (err) {
    // mintToken's own words: not a private key, no alg, an alg the key cannot sign with.
    progress('');
    return fail(`--key ${args.keyFile}: ${(err as Error).message}`);
  }
  if (!tty) process.stderr.write(`jitgate bench: ${args.info.target}, ${args.info.connections} connections, ${args.info.durationSec} s\n`);

  // SIGINT ends the load, and what was measured is still reported; a second one ends the process (default action).
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort();
  process.once('SIGINT', onSigint);
  const result = await runLoad({
    target: args.target,
    connections: args.info.connections,
    durationMs: args.durationMs,
    rate: args.info.rate,
    timeoutMs: args.timeoutMs,
    schedule: schedule(args.mix),
    requests,
    ca,
    signal: interrupt.signal,
    onTick: (elapsed, completed) => progress(`${(elapsed / 1000).toFixed(0)}/${args.info.durationSec} s, ${completed} answers, ${Math.round((completed * 1000) / elapsed)} req/s`),
  }).finally(() => process.off('SIGINT', onSigint));
  progress('');
  const outcome = verdict(args.info, result);
  process.stdout.write(textReport(args.info, result, outcome));
  try {
    if (args.json !== undefined) await writeFile(args.json, `${JSON.stringify(jsonReport(args.info, result, outcome), null, 2)}\n`);
    if (args.markdown !== undefined) await writeFile(args.markdown, markdownReport(args.info, result, outcome));
  } catch (err) {
    return fail(`writing the result: ${(err as Error).message}`);
  }
  if (result.interrupted) return 130;
  return outcome.ok ? 0 : 1;
}
