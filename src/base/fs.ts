import {
  promises as fsp,
  writeFileSync,
  renameSync,
  openSync,
  fsyncSync,
  closeSync,
  fchmodSync,
  readFileSync,
  constants as fsc,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Writes a file so that readers see the old content or the new, never a part: temp + fsync + rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await fsp.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path);
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Makes the file at `path` private (0600) whatever its mode was, created when absent, never
 * through a symlink; with `data`, its content becomes `data`. Synchronous: a few syscalls on a
 * small file, which through the thread pool were as many round trips, each queued behind
 * whatever else the pool does (a removed container's cgroups).
 */
export function writePrivateSync(path: string, data?: string | Uint8Array): void {
  const fd = openSync(
    path,
    fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW | (data === undefined ? 0 : fsc.O_TRUNC),
    0o600,
  );
  try {
    fchmodSync(fd, 0o600);
    if (data !== undefined) writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/** The text of the file at `path`, or '' when it cannot be read (absent, unreadable). */
export function readTextOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fsp.lstat(path);
    return true;
  } catch {
    return false;
  }
}

export async function readJsonFile(path: string): Promise<unknown> {
  return JSON.parse(await fsp.readFile(path, 'utf8')) as unknown;
}

/** A device node's numbers from its `rdev` (Linux's dev_t: major in bits 8-19 and 32+, minor in bits 0-7 and 20-31). */
export function devNumbers(rdev: number): { major: number; minor: number } {
  return {
    major: ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff),
    minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00),
  };
}
