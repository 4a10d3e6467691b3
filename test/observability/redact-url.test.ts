/** URLs in logs and errors (docs/fleet.md: a Redis password never appears; the OTLP endpoint's user and query neither). */
import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/observability/redact-url.ts';

describe('redactUrl', () => {
  it('a Redis URL keeps its ACL user and database, not its password', () => {
    expect(redactUrl('rediss://jitgate:s3cret@redis.internal:6380/2')).toBe('rediss://jitgate:***@redis.internal:6380/2');
    expect(redactUrl('redis://:s3cret@127.0.0.1:6379')).toBe('redis://:***@127.0.0.1:6379');
    expect(redactUrl('redis://127.0.0.1:6379/0')).toBe('redis://127.0.0.1:6379/0');
  });

  it('an endpoint also loses its user and its query', () => {
    expect(redactUrl('https://u:p@collector:4318/v1/traces?api_key=k', true)).toBe('https://***:***@collector:4318/v1/traces?***');
  });

  it('says so for a URL it cannot parse, without echoing it', () => {
    expect(redactUrl('redis://user:pa ss@[::1')).toBe('(unparsable URL)');
  });
});
