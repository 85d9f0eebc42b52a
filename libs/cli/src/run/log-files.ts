import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** The last non-empty line of a log file (read from its last 8 KiB), or undefined. */
export function lastLine(path: string, match?: (line: string) => boolean): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 8192);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    const chosen = match === undefined ? lines : lines.filter(match);
    return chosen.at(-1);
  } finally {
    closeSync(fd);
  }
}
