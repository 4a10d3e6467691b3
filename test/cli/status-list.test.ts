/**
 * `jitgate status-list` and `jitgate mint --status-uri/--status-idx` as an operator runs them (SPEC §10):
 * the printed list is a statuslist+jwt signed by the key, whose entries decode the same as the same
 * statuses laid down by the tests' independent encoder; usage errors exit 2 with a message.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDevKeys, type DevKeys } from '../../src/issuing/dev-keys.ts';
import { decodeLst, statusAt, type StatusBits } from '../../src/status-list/decode.ts';
import { signStatusList } from '../../src/cli/status-list.ts';
import { runCli } from '../fixtures/cli.ts';
import { independentLst } from '../status-list/independent-encoder.ts';

const URI = 'https://broker.internal/status/7';
let root: string;
let keys: DevKeys;
let jwks: ReturnType<typeof createLocalJWKSet>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'jitgate-status-list-cli-'));
  keys = await generateDevKeys(join(root, 'keys'));
  jwks = createLocalJWKSet(JSON.parse(await readFile(keys.jwksPath, 'utf8')) as { keys: JWK[] });
});
afterAll(() => rm(root, { recursive: true, force: true }));

function entries(lst: string, bits: StatusBits, size: number): number[] {
  const bytes = decodeLst(lst, 1 << 20);
  if (typeof bytes === 'string') throw new Error(bytes);
  return Array.from({ length: size }, (_, i) => statusAt(bytes, bits, i));
}

describe('jitgate status-list', () => {
  it.each([1, 2, 4, 8] as const)('prints a signed statuslist+jwt that decodes like the independent encoder (%i bits)', async (bits) => {
    const size = 40;
    const args = ['status-list', '--key', keys.privatePath, '--uri', URI, '--bits', String(bits), '--size', String(size), '--invalid', '3,17', '--ttl', '5m', '--exp', '1h'];
    if (bits > 1) args.push('--suspended', '5', '--status', '9=3');
    const r = await runCli(args);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const { payload, protectedHeader } = await jwtVerify(r.stdout.trim(), jwks, { typ: 'statuslist+jwt' });
    expect(protectedHeader.typ).toBe('statuslist+jwt');
    expect(payload.sub).toBe(URI);
    expect(payload.ttl).toBe(300);
    expect(payload.exp! - payload.iat!).toBe(3600);
    const sl = payload.status_list as { bits: StatusBits; lst: string };
    expect(sl.bits).toBe(bits);

    const expected = Array.from({ length: size }, (_, i) => (i === 3 || i === 17 ? 1 : bits > 1 && i === 5 ? 2 : bits > 1 && i === 9 ? 3 : 0));
    expect(entries(sl.lst, bits, size)).toEqual(expected);
    expect(entries(await independentLst(expected, bits), bits, size)).toEqual(entries(sl.lst, bits, size));
  });

  it.each([
    [['--bits', '3'], /--bits: expected 1, 2, 4 or 8/],
    [['--bits', '1', '--suspended', '5'], /status 2 at index 5 does not fit in 1 bit/],
    [['--invalid', '40'], /index 40 is outside the list/],
    [['--invalid', '1,-2'], /--invalid: expected comma-separated indexes/],
    [['--size', '0'], /--size: expected a positive integer/],
    [['--ttl', '5'], /--ttl: expected a positive whole-second duration/],
    // An index given two statuses is refused, never settled by flag order.
    [['--bits', '2', '--invalid', '1', '--status', '1=0'], /index 1 is given two statuses: 1 \(--invalid\) and 0 \(--status\)/],
    [['--bits', '2', '--invalid', '1', '--suspended', '1'], /index 1 is given two statuses: 1 \(--invalid\) and 2 \(--suspended\)/],
    [['--bits', '4', '--status', '2=3', '--status', '2=4'], /index 2 is given two statuses: 3 \(--status\) and 4 \(--status\)/],
    // Larger than any gate accepts (256 MiB inflated): refused before allocating.
    [['--size', '3000000000'], /--size: at most 2147483648 entries at 1 bit\(s\)/],
    [['--bits', '8', '--size', '268435457'], /--size: at most 268435456 entries at 8 bit\(s\)/],
    [['--kid', ''], /--kid: must not be empty/],
  ])('usage error %j → exit 2', async (extra, message) => {
    // A flag may be given once: --size 40 only where the case does not set its own.
    const r = await runCli(['status-list', '--key', keys.privatePath, '--uri', URI, ...(extra.includes('--size') ? [] : ['--size', '40']), ...extra]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  it.each([
    ['not a url', ''],
    ['HTTP://X/a/../b', ' (did you mean http://x/b?)'],
    ['https://Broker.internal/status/7', ' (did you mean https://broker.internal/status/7?)'],
    ['https://broker.internal:443/status/7', ' (did you mean https://broker.internal/status/7?)'],
    ['ftp://broker.internal/status/7', ''],
    ['https://user@broker.internal/status/7', ''],
    ['https://broker.internal/status/7#x', ''],
    ['https://broker.internal/status/%2F..%2Fctl', ''],
    ['https://broker.internal/status/..%3F/x', ''],
    ['/status/7', ''],
  ])('--uri %s: not the canonical form a gate compares → exit 2', async (uri, hint) => {
    const r = await runCli(['status-list', '--key', keys.privatePath, '--uri', uri, '--size', '8']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`--uri: expected an absolute http(s) URL in the canonical form gates compare`);
    // The message lists every encoding the gate refuses (it lacked %3F and %23: a re-probe).
    expect(r.stderr).toContain('no %2F, %5C, %2E, %3F, %23, %25, ; or encoded non-printable bytes in the path');
    expect(r.stderr).toContain(`got "${uri}"${hint}`);
  });

  it('an index given the same status twice is fine', async () => {
    const same = await runCli(['status-list', '--key', keys.privatePath, '--uri', URI, '--size', '8', '--invalid', '1', '--status', '1=1']);
    expect([same.code, same.stderr]).toEqual([0, '']);
    expect(entries((decodeJwt(same.stdout.trim()).status_list as { lst: string }).lst, 1, 8)).toEqual([0, 1, 0, 0, 0, 0, 0, 0]);
  });

  it('signStatusList (the library form) refuses an empty kid, which a gate would refuse as malformed', async () => {
    await expect(signStatusList({ key: keys.privatePath, uri: URI, bits: 1, size: 8, statuses: new Map(), kid: '' })).rejects.toThrow(/kid must not be empty/);
  });

  it('missing --uri → exit 2; an unreadable key → exit 1', async () => {
    const missing = await runCli(['status-list', '--key', keys.privatePath, '--size', '8']);
    expect([missing.code, missing.stderr.includes('missing required option --uri')]).toEqual([2, true]);
    const badKey = await runCli(['status-list', '--key', keys.jwksPath, '--uri', URI, '--size', '8']);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/is a JWKS/);
  });
});

describe('jitgate mint --status-uri --status-idx', () => {
  const base = () => ['mint', '--key', keys.privatePath, '--iss', 'https://broker.internal', '--aud', 'orders', '--sub', 'spiffe://prod/x'];

  it('puts status.status_list {idx, uri} in the token', async () => {
    const r = await runCli([...base(), '--status-uri', URI, '--status-idx', '12345']);
    expect(r.code).toBe(0);
    expect(decodeJwt(r.stdout.trim()).status).toEqual({ status_list: { idx: 12345, uri: URI } });
  });

  it('needs both flags, and a non-negative integer index', async () => {
    expect((await runCli([...base(), '--status-uri', URI])).code).toBe(2);
    expect((await runCli([...base(), '--status-idx', '3'])).code).toBe(2);
    const neg = await runCli([...base(), '--status-uri', URI, '--status-idx', '1.5']);
    expect([neg.code, /--status-idx: expected a non-negative integer/.test(neg.stderr)]).toEqual([2, true]);
  });

  it('refuses what every gate would refuse: an index past 2^53 (it would be rounded), a uri not in canonical form', async () => {
    const huge = await runCli([...base(), '--status-uri', URI, '--status-idx', '9007199254740993']);
    expect([huge.code, /--status-idx: expected a non-negative integer below 2\^53/.test(huge.stderr)]).toEqual([2, true]);
    for (const uri of [URI.replace('https://', 'HTTPS://'), `${URI}/x/../y`]) {
      const r = await runCli([...base(), '--status-uri', uri, '--status-idx', '1']);
      expect([uri, r.code, /--status-uri: expected an absolute http\(s\) URL in the canonical form/.test(r.stderr)]).toEqual([uri, 2, true]);
    }
  });
});
