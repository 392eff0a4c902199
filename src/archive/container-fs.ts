/**
 * A container's filesystem seen from the host, for `docker cp` and `docker export`. Every path is
 * resolved as if `root` were `/`: symlinks are followed inside the root, `..` stops at the root,
 * so no path and no archive entry can reach outside it.
 */
import { promises as fsp, createWriteStream } from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import * as tar from 'tar-stream';
import { invalidArgument, notFound } from '../base/errors.js';
import { packTree } from './pack.js';
import { maybeGunzip } from './layer.js';

/** Resolves `path` inside `root`, following symlinks (all but the last when `followLast` is false). */
export async function resolveInRoot(root: string, path: string, followLast = true): Promise<string> {
  const parts = posix.normalize('/' + path).split('/').filter(Boolean);
  let cur: string[] = [];
  for (let i = 0, hops = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '..') {
      cur.pop();
      continue;
    }
    const next = [...cur, part];
    const abs = join(root, ...next);
    const isLast = i === parts.length - 1;
    let st;
    try {
      st = await fsp.lstat(abs);
    } catch {
      cur = next;
      continue; // does not exist (yet): the rest is taken literally
    }
    if (st.isSymbolicLink() && (!isLast || followLast)) {
      if (++hops > 40) throw invalidArgument(`too many levels of symbolic links: ${path}`);
      const target = await fsp.readlink(abs);
      const rest = parts.slice(i + 1);
      const base = target.startsWith('/') ? [] : cur;
      parts.splice(0, parts.length, ...[...base, ...posix.normalize(target).split('/').filter(Boolean), ...rest]);
      cur = [];
      i = -1;
      continue;
    }
    cur = next;
  }
  return join(root, ...cur);
}

export interface PathStat {
  name: string;
  size: number;
  /** Go's os.FileMode bits, as Docker sends them. */
  mode: number;
  mtime: string;
  linkTarget: string;
}

function goMode(st: import('node:fs').Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m |= 2 ** 31;
  if (st.isSymbolicLink()) m |= 2 ** 27;
  if (st.isCharacterDevice()) m |= 2 ** 26 | 2 ** 21;
  if (st.isBlockDevice()) m |= 2 ** 26;
  if (st.isFIFO()) m |= 2 ** 25;
  if (st.isSocket()) m |= 2 ** 24;
  if (st.mode & 0o4000) m |= 2 ** 23;
  if (st.mode & 0o2000) m |= 2 ** 22;
  if (st.mode & 0o1000) m |= 2 ** 20;
  return m >>> 0;
}

export async function statPath(root: string, path: string): Promise<PathStat> {
  const abs = await resolveInRoot(root, path, false);
  let st;
  try {
    st = await fsp.lstat(abs);
  } catch {
    throw notFound(`Could not find the file ${path} in container`);
  }
  const linkTarget = st.isSymbolicLink() ? await fsp.readlink(abs) : '';
  return { name: basename(path) || '/', size: st.size, mode: goMode(st), mtime: st.mtime.toISOString(), linkTarget };
}

/** Tar of `path` (file or directory), entries named from its base name, like `docker cp ctr:/a/b`. */
export async function packPath(root: string, path: string, out: Writable): Promise<void> {
  const followLast = path.endsWith('/.') || path.endsWith('/');
  const abs = await resolveInRoot(root, path, followLast);
  try {
    await fsp.lstat(abs);
  } catch {
    throw notFound(`Could not find the file ${path} in container`);
  }
  const name = basename(abs) || '.';
  await packTree(abs, out, { prefix: name, includeRoot: true });
}

/** Tar of the whole root filesystem (`docker export`). */
export async function packDir(root: string, out: Writable): Promise<void> {
  await packTree(root, out);
}

function entryPath(name: string): string[] {
  const parts = posix.normalize('/' + name).split('/').filter(Boolean);
  if (name.split('/').includes('..')) throw invalidArgument(`archive entry escapes the destination: ${name}`);
  return parts;
}

/**
 * Extracts a tar (plain or gzip) into the directory `dir` of the container. Entries are created
 * one by one, each parent resolved inside the root; an entry with `..` is refused.
 */
export async function extractInto(root: string, dir: string, input: Readable, opts: { noOverwriteDirNonDir?: boolean } = {}): Promise<void> {
  const dest = await resolveInRoot(root, dir);
  let st;
  try {
    st = await fsp.stat(dest);
  } catch {
    throw notFound(`Could not find the file ${dir} in container`);
  }
  if (!st.isDirectory()) throw invalidArgument(`extraction point is not a directory: ${dir}`);
  const destRel = dest.slice(root.length) || '/';
  const ex = tar.extract();
  const hardlinks: Array<[string, string]> = [];
  const work = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      void (async () => {
        const parts = entryPath(h.name);
        if (parts.length === 0) {
          stream.resume();
          return;
        }
        const parent = await resolveInRoot(root, posix.join(destRel, ...parts.slice(0, -1)));
        const target = join(parent, parts[parts.length - 1]!);
        await fsp.mkdir(parent, { recursive: true });
        const existing = await fsp.lstat(target).catch(() => null);
        if (existing && opts.noOverwriteDirNonDir && existing.isDirectory() !== (h.type === 'directory'))
          throw invalidArgument(`cannot overwrite ${existing.isDirectory() ? 'directory' : 'non-directory'} ${posix.join(dir, ...parts)} with ${h.type}`);
        if (existing && !(existing.isDirectory() && h.type === 'directory')) await fsp.rm(target, { recursive: true, force: true });
        switch (h.type) {
          case 'directory':
            await fsp.mkdir(target, { recursive: true });
            stream.resume();
            break;
          case 'symlink':
            await fsp.symlink(h.linkname ?? '', target);
            stream.resume();
            break;
          case 'link':
            hardlinks.push([target, h.linkname ?? '']);
            stream.resume();
            break;
          case 'file':
          case 'contiguous-file':
            await pipeline(stream as unknown as Readable, createWriteStream(target, { mode: h.mode ?? 0o644 }));
            break;
          default:
            stream.resume();
            return;
        }
        if (h.type !== 'symlink') await fsp.chmod(target, (h.mode ?? 0o644) & 0o7777);
        await fsp.lchown(target, h.uid ?? 0, h.gid ?? 0);
        if (h.type !== 'symlink' && h.mtime) await fsp.utimes(target, h.mtime, h.mtime);
      })().then(() => next(), (e: unknown) => reject(e));
    });
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  (await maybeGunzip(input)).pipe(ex as unknown as NodeJS.WritableStream);
  await work;
  for (const [target, link] of hardlinks) {
    const src = await resolveInRoot(root, posix.join(destRel, ...entryPath(link)));
    await fsp.mkdir(dirname(target), { recursive: true });
    await fsp.link(src, target);
  }
}
