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

/**
 * The error for a path that is not a regular file where one is read (a named pipe would hold the
 * read until a writer comes, a device never ends): thrown before reading, with the text as its code.
 */
export function notRegularFile(): NodeJS.ErrnoException {
  return Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
}

