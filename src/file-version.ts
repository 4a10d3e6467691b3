/**
 * Which file is at a path and which content it holds, as one comparable string from its stat: device and
 * inode (a replacement by rename, Kubernetes' symlink swap), size, mtime and ctime. ctime cannot be set
 * back, so an edit that kept size and mtime (cp -p, rsync -t, touch -r, a list where one jti of the same
 * length was swapped) still reads as a change; size and mtime alone missed it (a black-box probe of the
 * revocation file). Shared by the files jitgate polls: the revocation file and the TLS files.
 */
import type { Stats } from 'node:fs';

export function fileVersion(s: Stats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}
