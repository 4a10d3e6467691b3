/**
 * `headers.max_token_bytes` (GatePolicy.maxTokenBytes): its default, and the most any gate may be
 * configured to accept. Shared by the config schema and `jitgate mint`, which refuses to sign a
 * token no gate accepts.
 */
export const DEFAULT_MAX_TOKEN_BYTES = 8192;
export const MAX_TOKEN_BYTES_CEILING = 65536;
