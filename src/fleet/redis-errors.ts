/**
 * The error the Redis layer answers with, in a module of its own so that code which only needs to
 * recognise it (the admin API) does not load the Redis client: a gate without `redis:` never does.
 */

/** Redis could not be asked: not connected, timed out, or it answered an error. */
export class RedisUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RedisUnavailableError';
  }
}
