/**
 * URLs as they appear in logs and errors. A Redis URL keeps its ACL user (the operator needs to see which
 * user the gate logs in as) and loses its password; an OTLP endpoint also loses its user and its query,
 * where a collector's API key often travels.
 */
const MARK = '***';

/** `url` with its password (with `credentialsAndQuery`: also its user and query) replaced by `***`. */
export function redactUrl(url: string, credentialsAndQuery = false): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '(unparsable URL)';
  }
  if (u.password !== '') u.password = MARK;
  if (credentialsAndQuery) {
    if (u.username !== '') u.username = MARK;
    if (u.search !== '') u.search = `?${MARK}`;
  }
  return u.href;
}
