/**
 * The `redis` block's own checks (src/config/schema.ts). A black-box probe found settings check-config
 * passed and serve then crashed on (`/abc`: a TypeError and a stack trace), retried for ever (`/1.5`,
 * `command_timeout: 0s`: never ready) or ignored (`?db=3` used database 0, a CA for a plain connection).
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.ts';

const base = { upstream: { url: 'http://127.0.0.1:8081' }, service: { audience: 'orders' }, issuers: [{ issuer: 'https://broker.internal', jwks_file: './jwks.json' }] };
const check = (redis: Record<string, unknown>) => () => validateConfig({ ...base, redis }, 'jitgate.yaml');

describe('redis settings', () => {
  it.each([
    [{ url: 'redis://127.0.0.1:6379/abc' }, /redis\.url: the path is the database number/],
    [{ url: 'redis://127.0.0.1:6379/0/1' }, /redis\.url: the path is the database number/],
    [{ url: 'redis://127.0.0.1:6379/%30' }, /redis\.url: the path is the database number/],
    [{ url: 'redis://127.0.0.1:6379/1.5' }, /redis\.url: the path is the database number/],
    [{ url: 'redis://127.0.0.1:6379?db=3' }, /redis\.url: no query or fragment/],
    [{ url: 'redis://127.0.0.1:6379/0#x' }, /redis\.url: no query or fragment/],
    [{ url: 'redis://127.0.0.1:6379/0', command_timeout: '0s' }, /redis\.command_timeout: must be more than 0/],
    [{ url: 'redis://127.0.0.1:6379/0', connect_timeout: '0s' }, /redis\.connect_timeout: must be more than 0/],
    [{ url: 'redis://127.0.0.1:6379/0', ca_file: './ca.pem' }, /redis\.ca_file: is for rediss:\/\/ URLs/],
  ])('%j is refused naming the key', (redis, message) => {
    expect(check(redis)).toThrow(message);
  });

  it.each([{ url: 'redis://127.0.0.1:6379' }, { url: 'redis://127.0.0.1:6379/' }, { url: 'redis://user:pw@127.0.0.1:6379/15' }, { url: 'rediss://redis.internal:6380/0', ca_file: './ca.pem' }])('%j is accepted', (redis) => {
    expect(check(redis)).not.toThrow();
  });
});
