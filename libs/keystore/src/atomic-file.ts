import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `text` to `path` so that a reader sees the whole old file or the whole new one,
 * never a torn one: a temporary file beside it (created exclusively, with `mode` from the
 * start, fsynced), then put in place. `replace: false` places it with link(2), which fails
 * with EEXIST instead of replacing, so a key can never be overwritten by a racing writer;
 * `replace: true` uses rename(2). Returns false when `replace` is false and the path exists.
 */
export async function writeFileAtomic(path: string, text: string, mode: number, options: { replace: boolean }): Promise<boolean> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(text);
    // The umask may have cleared bits of `mode` but never adds any; chmod makes the mode exact.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (options.replace) {
      await fs.rename(temp, path);
    } else {
      try {
        await fs.link(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw error;
      }
    }
  } finally {
    await fs.rm(temp, { force: true });
  }
  await syncDirectory(dir);
  return true;
}

/** Makes the new directory entry durable (POSIX needs an fsync of the directory itself). */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems refuse fsync on a directory; the file itself is already synced.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL' && (error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
  } finally {
    await handle.close();
  }
}
