/**
 * `docker cp` into a container (PUT /containers/{id}/archive): a tar (plain or gzip) extracted
 * into a directory of the container, every entry created through rooted.ts.
 *
 * Contract:
 * - The archive is spooled to `spoolDir` and every header checked first (names, link names,
 *   types, lengths): an archive with a bad entry is refused (400) before anything is written.
 * - Names are cleaned as dockerd does: a leading `/` is dropped (`/etc/x` lands at `<dir>/etc/x`),
 *   `a/../b` is `b`; a name or hard link target that climbs above `<dir>` is refused. Device nodes
 *   are refused (a device file in a rootfs is a way to the host's disks); fifos are made.
 * - Each entry's parent is walked inside the root (symlinks, including ones this archive planted,
 *   are followed inside the root only; volumes reached as in the container). What was there is
 *   removed through fds (never a path walk) and the entry created with calls that do not follow
 *   the last name (O_CREAT|O_EXCL|O_NOFOLLOW, mkdir, symlink, mknod, linkat).
 * - Hard links are made in archive order, as dockerd does: `linkname` is a path below `<dir>` that
 *   an earlier entry (or the container) put there; linkat(2) between the two parent fds.
 * - A failure after the checks (the container's own files in the way, a read-only mount, a hard
 *   link across mounts) ends the request with a 4xx; entries before it stay, as with dockerd.
 */
import { closeSync, createReadStream, createWriteStream, fstatSync, promises as fsp, constants as fsc } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import type { Header as TarHeader } from 'tar-stream';
import { BerthError, invalidArgument, notFound } from '../base/errors.js';
import { O_PATH, mknod } from '../base/syscalls.js';
import { maybeGunzip } from './layer.js';
import { type RootedFs, errCode, fdPath, fsError, openChild, removeTree } from './rooted.js';

export interface ExtractOptions {
  noOverwriteDirNonDir?: boolean;
  /** A directory of berthd's (not the container's) for the spooled archive. */
  spoolDir: string;
}

const PATH_MAX = 4096;
const NAME_MAX = 255;
type Header = TarHeader;

/**
 * A tar entry name (or hard link target) as the list of components below the extraction dir, or
 * an error: cleaned lexically (leading `/` dropped, `.` and `a/..` folded), never above the dir.
 */
export function entryParts(name: string): string[] {
  if (name.includes('\0')) throw invalidArgument(`archive entry name holds a NUL byte: ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name) > PATH_MAX)
    throw invalidArgument(`archive entry name longer than ${PATH_MAX} bytes: ${name.slice(0, 64)}...`);
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw invalidArgument(`archive entry escapes the destination directory: ${name}`);
      out.pop();
      continue;
    }
    if (Buffer.byteLength(c) > NAME_MAX)
      throw invalidArgument(`archive entry name has a component longer than ${NAME_MAX} bytes: ${c.slice(0, 64)}...`);
    out.push(c);
  }
  return out;
}

/** Checks one header; returns nothing or throws the 400 that refuses the archive. */
export function checkHeader(h: Header): void {
  entryParts(h.name);
  switch (h.type) {
    case 'file':
    case 'contiguous-file':
    case 'directory':
    case 'fifo':
      return;
    case 'symlink':
      if (!h.linkname) throw invalidArgument(`symlink ${h.name} has no target`);
      if (h.linkname.includes('\0') || Buffer.byteLength(h.linkname) >= PATH_MAX)
        throw invalidArgument(`symlink ${h.name}: target too long or not a path`);
      return;
    case 'link':
      if (!h.linkname) throw invalidArgument(`hard link ${h.name} has no target`);
      if (entryParts(h.linkname).length === 0)
        throw invalidArgument(`hard link ${h.name} points at the destination directory itself`);
      return;
    case 'character-device':
    case 'block-device':
      throw invalidArgument(`archive entry ${h.name} is a device node: not allowed in a copy into a container`);
    default:
      throw invalidArgument(`archive entry ${h.name} has an unsupported type: ${String(h.type)}`);
  }
}

/** Reads a tar file, calling `onEntry` for each entry in order (its stream must be consumed or resumed). */
async function eachEntry(file: string, onEntry: (h: Header, body: Readable) => Promise<void>): Promise<number> {
  const ex = tar.extract();
  let n = 0;
  const work = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      n++;
      onEntry(h as Header, stream as unknown as Readable).then(
        () => next(),
        (e: unknown) => {
          reject(e);
          ex.destroy();
        },
      );
    });
    ex.on('finish', resolve);
    ex.on('error', (e: Error) => reject(invalidArgument(`invalid tar archive: ${e.message}`)));
  });
  work.catch(() => undefined);
  const src = createReadStream(file);
  src.on('error', (e) => ex.destroy(e));
  src.pipe(ex as unknown as NodeJS.WritableStream);
  await work;
  src.destroy();
  return n;
}

/** Reads an entry's body to its end, discarding it. */
function drain(body: Readable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    body.on('end', resolve);
    body.on('error', reject);
    body.resume();
  });
}

/** Sets mode, owner and times on the inode behind `fd` (O_PATH, not a symlink), through /proc/self/fd. */
async function setMeta(fd: number, h: Header): Promise<void> {
  const p = fdPath(fd);
  await fsp.chown(p, h.uid ?? 0, h.gid ?? 0);
  await fsp.chmod(p, (h.mode ?? 0o644) & 0o7777); // after chown, which clears setuid bits
  if (h.mtime) await fsp.utimes(p, h.mtime, h.mtime);
}

export async function extractInto(fs: RootedFs, dir: string, input: Readable, opts: ExtractOptions): Promise<void> {
  let dest;
  try {
    dest = fs.resolve(dir, { followLast: true });
  } catch (e) {
    throw fsError(e, dir);
  }
  const destPath = dest.path;
  const destSt = dest.st;
  dest.close();
  if (!destSt) throw notFound(`Could not find the file ${dir} in container`);
  if (!destSt.isDirectory()) throw invalidArgument(`extraction point is not a directory: ${dir}`);

  await fsp.mkdir(opts.spoolDir, { recursive: true, mode: 0o700 });
  const spool = join(opts.spoolDir, `cp-${randomBytes(8).toString('hex')}.tar`);
  try {
    await pipeline(await maybeGunzip(input), createWriteStream(spool, { mode: 0o600 }));
    // pass 1: every header checked before anything is written
    await eachEntry(spool, async (h, body) => {
      checkHeader(h);
      await drain(body);
    });
    // pass 2: extraction
    await eachEntry(spool, async (h, body) => {
      try {
        await extractEntry(fs, destPath, h, body, opts);
      } catch (e) {
        body.resume();
        throw e instanceof BerthError ? e : fsError(e, posix.join(dir, h.name));
      }
    });
  } finally {
    await fsp.rm(spool, { force: true });
  }
}

async function extractEntry(
  fs: RootedFs,
  destPath: string,
  h: Header,
  body: Readable,
  opts: ExtractOptions,
): Promise<void> {
  const parts = entryParts(h.name);
  const shown = posix.join(destPath, ...parts);
  if (parts.length === 0) {
    body.resume(); // `.`: the destination itself, which exists
    return;
  }
  const name = parts[parts.length - 1]!;
  const parentPath = posix.join(destPath, ...parts.slice(0, -1));
  const parent = fs.resolve(parentPath, { followLast: true, mkdirs: true });
  try {
    if (parent.fd < 0 || !parent.st?.isDirectory())
      throw invalidArgument(`cannot extract ${shown}: its parent is not a directory`);
    if (parent.readOnly) throw new BerthError('PermissionDenied', `cannot extract ${shown}: read-only file system`);
    const where = posix.join(parent.path, name);
    if (fs.mountAt(where)) {
      // a mount's root (a volume, /etc/hosts...) is not replaced; a directory entry merges into it
      if (h.type === 'directory') return void body.resume();
      throw invalidArgument(`cannot replace ${where}: it is a mount point`);
    }
    const at = fdPath(parent.fd, name);
    const existing = await fsp.lstat(at).catch((e: unknown) => {
      if (errCode(e) === 'ENOENT') return null;
      throw e;
    });
    const isDir = h.type === 'directory';
    if (existing && opts.noOverwriteDirNonDir && existing.isDirectory() !== isDir)
      throw invalidArgument(
        `cannot overwrite ${existing.isDirectory() ? 'directory' : 'non-directory'} "${where}" with ${isDir ? 'directory' : 'non-directory'} "${h.name}"`,
      );
    if (existing && !(existing.isDirectory() && isDir)) await removeTree(parent.fd, name);

    switch (h.type) {
      case 'directory': {
        if (!existing?.isDirectory()) await fsp.mkdir(at, 0o700);
        body.resume();
        break;
      }
      case 'file':
      case 'contiguous-file': {
        const fh = await fsp.open(at, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of body) {
            const b = chunk as Buffer;
            for (let off = 0; off < b.length;) off += (await fh.write(b, off, b.length - off)).bytesWritten;
          }
          await fh.chown(h.uid ?? 0, h.gid ?? 0);
          await fh.chmod((h.mode ?? 0o644) & 0o7777);
          if (h.mtime) await fh.utimes(h.mtime, h.mtime);
        } finally {
          await fh.close();
        }
        return;
      }
      case 'symlink': {
        body.resume();
        await fsp.symlink(h.linkname!, at);
        await fsp.lchown(at, h.uid ?? 0, h.gid ?? 0);
        if (h.mtime) await fsp.lutimes(at, h.mtime, h.mtime);
        return;
      }
      case 'link': {
        body.resume();
        const target = posix.join(destPath, ...entryParts(h.linkname!));
        const src = fs.resolve(target, { followLast: false });
        try {
          if (src.fd < 0) throw invalidArgument(`hard link ${h.name}: its target ${h.linkname} does not exist`);
          if (src.isMountRoot || src.st?.isDirectory())
            throw invalidArgument(`hard link ${h.name}: cannot link to ${h.linkname}`);
          // as in the container, where each mount is its own: no link from one mount to another
          if (src.mount !== parent.mount)
            throw invalidArgument(`hard link ${h.name} -> ${h.linkname}: the two are on different mounts`);
          await fsp.link(fdPath(src.parentFd, src.name), at);
        } catch (e) {
          if (errCode(e) === 'EXDEV')
            throw invalidArgument(`hard link ${h.name} -> ${h.linkname}: the two are on different mounts`);
          throw e;
        } finally {
          src.close();
        }
        return;
      }
      case 'fifo': {
        body.resume();
        mknod(at, fsc.S_IFIFO | ((h.mode ?? 0o644) & 0o777), 0);
        break;
      }
      default:
        throw invalidArgument(`archive entry ${h.name} has an unsupported type: ${String(h.type)}`);
    }
    // a directory or fifo just made (or found): its metadata through an fd of its own
    const fd = openChild(parent.fd, name, O_PATH);
    try {
      const st = fstatSync(fd);
      if (h.type === 'directory' ? !st.isDirectory() : !st.isFIFO())
        throw invalidArgument(`cannot extract ${shown}: it was replaced while being made`);
      await setMeta(fd, h);
    } finally {
      closeSync(fd);
    }
  } finally {
    parent.close();
  }
}
