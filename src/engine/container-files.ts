/**
 * A container's files: `docker cp` (stat, read, write a path) and `docker export`, all through the
 * container's rooted view (every lookup the kernel's, inside its root and mounts).
 */
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { conflict, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import {
  archivePath,
  checkExtractPoint,
  extractInto,
  packDir,
  packPath,
  statPath,
  type PathStat,
} from '../archive/container-fs.js';
import type { RootedFs } from '../archive/rooted.js';
import type { ContainerRecord } from './record.js';
import type { Engine } from './engine.js';
import { actorOf } from './actor.js';

export type { PathStat };

export class ContainerFiles {
  constructor(private readonly e: Engine) {}

  /** Runs `f` on the container's files as it sees them (one view per call, closed after). */
  private async withView<T>(c: ContainerRecord, ref: string, f: (fs: RootedFs) => Promise<T>): Promise<T> {
    const fs = await this.e.rootedView(c);
    try {
      return await f(fs);
    } catch (e) {
      // dockerd names the container as the client did: "Could not find the file /x in container web"
      if (isBerthError(e, 'NotFound') && e.message.endsWith(' in container')) throw notFound(`${e.message} ${ref}`, e);
      throw e;
    } finally {
      fs.close();
    }
  }

  /** HEAD /containers/{id}/archive. */
  stat(ref: string, path: string): Promise<PathStat> {
    const c = this.e.get(ref);
    return this.withView(c, ref, async (fs) => statPath(fs, checkPath(path)));
  }

  /** GET /containers/{id}/archive: `open` is given the path's stat and returns where the tar goes. */
  async read(ref: string, path: string, open: (st: PathStat) => Writable): Promise<void> {
    const c = this.e.get(ref);
    checkPath(path);
    await this.withView(c, ref, async (fs) => packPath(fs, path, open(statPath(fs, path))));
    // as dockerd: once the archive is sent
    this.e.events.emit('container', 'archive-path', c.id, actorOf(c));
  }

  /**
   * PUT /containers/{id}/archive: unpacks the tar `input` at `path`. Refused first as dockerd does
   * (daemon/archive.go): a missing path (404), one that is not a directory, one under a read-only
   * volume or bind ("mounted volume is marked read-only"), one on a read-only rootfs outside any
   * mount. The kernel-resolved walk still refuses any write a read-only mount holds (EROFS).
   */
  async write(ref: string, path: string, input: Readable, o: { noOverwriteDirNonDir: boolean }): Promise<void> {
    const c = this.e.get(ref);
    checkPath(path);
    await this.withView(c, ref, (fs) => {
      checkExtractPoint(fs, path);
      const m = mountHolding(c, archivePath(path).replace(/\/\.?$/, '') || '/');
      if (m && !m.RW) throw conflict('mounted volume is marked read-only');
      if (!m && c.hostConfig.ReadonlyRootfs) throw conflict('container rootfs is marked read-only');
      return extractInto(fs, archivePath(path), input, {
        noOverwriteDirNonDir: o.noOverwriteDirNonDir,
        spoolDir: join(this.e.root, 'tmp'),
      });
    });
    // as dockerd: once the archive is unpacked
    this.e.events.emit('container', 'extract-to-dir', c.id, actorOf(c));
  }

  /** GET /containers/{id}/export: the whole filesystem as a tar into `open()`; the `export` event once done. */
  async export(ref: string, open: () => Writable): Promise<void> {
    const c = this.e.get(ref);
    await this.withView(c, ref, (fs) => packDir(fs.root, open()));
    this.e.events.emit('container', 'export', c.id, actorOf(c));
  }
}

function checkPath(p: string): string {
  if (!p) throw invalidArgument('bad parameter: pathcannot be empty'); // dockerd's words, its missing space too
  return p;
}

/** The volume or bind whose destination holds `abs` (the deepest one), as the path is written. */
function mountHolding(c: ContainerRecord, abs: string) {
  let best: NonNullable<ContainerRecord['mounts']>[number] | undefined;
  for (const m of c.mounts ?? []) {
    if (m.Type === 'tmpfs') continue;
    const d = m.Destination;
    if ((abs === d || abs.startsWith(d === '/' ? '/' : `${d}/`)) && (!best || d.length > best.Destination.length))
      best = m;
  }
  return best;
}
