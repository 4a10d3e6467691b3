/**
 * `jitgate bench`: load any deployed gate — jitgate, or another product in front of the same backend — with grant
 * tokens minted from a key, check every answer against what a working gate must say, and print a table. Exit 0 when
 * every answer was the expected one, 1 when any was not (or a request got no answer), 2 on a usage error.
 *
 * @module
 */
import { writeFile } from 'node:fs/promises';
import type { JWK } from 'jose';
import { parseDuration, TIMER_MAX_MS } from '../config/duration.ts';
import { parseMix, schedule } from '../loadgen/mix.ts';
import { jsonReport, markdownReport, textReport, type RunInfo } from '../loadgen/report.ts';
import { prepareRequests } from '../loadgen/requests.ts';
import { runLoad } from '../loadgen/run-load.ts';
import { commandUsageError, parseCommand } from './args.ts';
import { readKeyFile } from '../issuing/key-files.ts';

const USAGE = `Usage: jitgate bench --target URL --key FILE --iss ISS --aud AUD [options]

Load a gate with freshly minted grant tokens and check every answer.

  --target URL        the gate (or any product in front of the backend), e.g. http://127.0.0.1:8080
  --key FILE          private JWK that the gate trusts (as written by jitgate keys)
  --iss ISS           token issuer
  --aud AUD           token audience (the gate's service.audience)
  --sub SUB           token subject (default spiffe://jitgate-bench/load)
  --action METHOD     HTTP method of every request, and the grant's action (default GET)
  --path PATH         request path; the grant covers it and everything below it (default /)
  --outside-path PATH path for "outside" requests, not covered by the grant (default /jitgate-bench-outside)
  --tokens N          distinct tokens in rotation per kind (default 100)
  --ttl DURATION      token lifetime (default 10m; keep it within the issuer's max_ttl)
  --mix SPEC          kinds and weights (default allow=100); kinds: allow (expects 2xx), outside (403),
                      bad-signature (401), no-token (401), expired (401); e.g. allow=90,outside=5,bad-signature=5
  --duration DURATION how long to send (default 10s)
  --connections N     keep-alive connections (default 10)
  --rate N            offered requests per second over all connections (default: as fast as answered)
  --timeout DURATION  per-request answer timeout (default 10s)
  --header 'K: V'     an extra header on every request (repeatable), e.g. a Host
  --json FILE         also write the full result as JSON
  --markdown FILE     also write the table as Markdown
  -h, --help          show this help
`;

const OPTIONS = {
  target: { type: 'string' },
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

function required(v: string | undefined, flag: string): string {
  if (v === undefined || v === '') throw new Error(`${flag} is required`);
  return v;
}

function positiveInt(v: string | undefined, flag: string, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a whole number above 0, got ${JSON.stringify(v)}`);
  return n;
}

function duration(v: string | undefined, flag: string, def: number): number {
  if (v === undefined) return def;
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0 || ms > TIMER_MAX_MS) throw new Error(`${flag}: expected a duration like 10s (at most 24d), got ${JSON.stringify(v)}`);
  return ms;
}

function headers(list: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list ?? []) {
    const colon = h.indexOf(':');
    if (colon < 1) throw new Error(`--header: expected 'Name: value', got ${JSON.stringify(h)}`);
    out[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const v = parseCommand(argv, OPTIONS, USAGE, usageError);
  if (typeof v === 'number') return v;
  let target: URL;
  let args: ReturnType<typeof settings>;
  try {
    target = new URL(required(v.target, '--target'));
    if (target.protocol !== 'http:') throw new Error('--target: only http:// targets are supported');
    args = settings(v);
  } catch (err) {
    return usageError((err as Error).message);
  }
  let key: JWK;
  try {
    key = await readKeyFile(args.keyFile);
  } catch (err) {
    process.stderr.write(`jitgate bench: ${(err as Error).message}\n`);
    return 1;
  }

  const tty = process.stderr.isTTY === true;
  const progress = (line: string): void => {
    if (tty) process.stderr.write(`\r\x1b[K${line}`);
  };
  const requests = await prepareRequests({ ...args.grant, key }, args.mix.map((p) => p.kind), args.tokens, (done, total) => {
    if (done % 50 === 0 || done === total) progress(`minting tokens ${done}/${total}`);
  });
  if (!tty) process.stderr.write(`jitgate bench: ${args.info.target}, ${args.info.connections} connections, ${args.info.durationSec} s\n`);
  const result = await runLoad({
    target,
    connections: args.info.connections,
    durationMs: args.durationMs,
    rate: args.info.rate,
    timeoutMs: args.timeoutMs,
    schedule: schedule(args.mix),
    requests,
    onTick: (elapsed, completed) => progress(`${(elapsed / 1000).toFixed(0)}/${args.info.durationSec} s, ${completed} answers, ${Math.round((completed * 1000) / elapsed)} req/s`),
  });
  progress('');
  process.stdout.write(textReport(args.info, result));
  if (v.json !== undefined) await writeFile(v.json, `${JSON.stringify(jsonReport(args.info, result), null, 2)}\n`);
  if (v.markdown !== undefined) await writeFile(v.markdown, markdownReport(args.info, result));
  const errors = Object.values(result.errors).reduce((a, b) => a + b, 0);
  return result.unexpected === 0 && errors === 0 && result.completed > 0 ? 0 : 1;
}

function settings(v: Exclude<ReturnType<typeof parseCommand<typeof OPTIONS>>, number>) {
  const mixText = v.mix ?? 'allow=100';
  const durationMs = duration(v.duration, '--duration', 10_000);
  const connections = positiveInt(v.connections, '--connections', 10);
  const rate = v.rate === undefined ? undefined : positiveInt(v.rate, '--rate', 1);
  const tokens = positiveInt(v.tokens, '--tokens', 100);
  const path = v.path ?? '/';
  if (!path.startsWith('/')) throw new Error('--path: expected an absolute path such as /orders/42');
  const outsidePath = v['outside-path'] ?? '/jitgate-bench-outside';
  if (!outsidePath.startsWith('/')) throw new Error('--outside-path: expected an absolute path');
  const info: RunInfo = { target: v.target!, connections, durationSec: durationMs / 1000, rate, tokens, mix: mixText };
  return {
    keyFile: required(v.key, '--key'),
    mix: parseMix(mixText),
    durationMs,
    timeoutMs: duration(v.timeout, '--timeout', 10_000),
    tokens,
    info,
    grant: {
      iss: required(v.iss, '--iss'),
      aud: required(v.aud, '--aud'),
      sub: v.sub ?? 'spiffe://jitgate-bench/load',
      action: (v.action ?? 'GET').toUpperCase(),
      path,
      outsidePath,
      ttlSeconds: Math.round(duration(v.ttl, '--ttl', 600_000) / 1000),
      headers: headers(v.header),
    },
  };
}
