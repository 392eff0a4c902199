/**
 * A container's files: `docker cp` (stat, read, write a path) and `docker export`, all through the
 * container's rooted view (every lookup the kernel's, inside its root and mounts).
 */
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { conflict, invalidArgument } from '../base/errors.js';
import { extractInto, packDir, packPath, statPath, type PathStat } from '../archive/container-fs.js';
import type { RootedFs } from '../archive/rooted.js';
import type { ContainerRecord } from './record.js';
import type { Engine } from './engine.js';
import { actorOf } from './actor.js';

export type { PathStat };

export class ContainerFiles {
  constructor(private readonly e: Engine) {}

  /** Runs `f` on the container's files as it sees them (one view per call, closed after). */
  private async withView<T>(c: ContainerRecord, f: (fs: RootedFs) => Promise<T>): Promise<T> {
    const fs = await this.e.rootedView(c);
    try {
      return await f(fs);
    } finally {
      fs.close();
    }
  }

  /** HEAD /containers/{id}/archive. */
  stat(ref: string, path: string): Promise<PathStat> {
    const c = this.e.get(ref);
    return this.withView(c, async (fs) => statPath(fs, checkPath(path)));
  }

  /** GET /containers/{id}/archive: `open` is given the path's stat and returns where the tar goes. */
  read(ref: string, path: string, open: (st: PathStat) => Writable): Promise<void> {
    const c = this.e.get(ref);
    checkPath(path);
    return this.withView(c, async (fs) => {
      const out = open(statPath(fs, path));
      // dockerd 20.10 emits archive-path for a GET (not for HEAD), extract-to-dir for a PUT (f-ctr-run)
      this.e.events.emit('container', 'archive-path', c.id, actorOf(c));
      return packPath(fs, path, out);
    });
  }

  /** PUT /containers/{id}/archive: unpacks the tar `input` at `path`. */
  write(ref: string, path: string, input: Readable, o: { noOverwriteDirNonDir: boolean }): Promise<void> {
    const c = this.e.get(ref);
    if (c.hostConfig.ReadonlyRootfs) throw conflict('container rootfs is marked read-only');
    checkPath(path);
    return this.withView(c, async (fs) => {
      await extractInto(fs, path, input, {
        noOverwriteDirNonDir: o.noOverwriteDirNonDir,
        spoolDir: join(this.e.root, 'tmp'),
      });
      this.e.events.emit('container', 'extract-to-dir', c.id, actorOf(c));
    });
  }

  /** GET /containers/{id}/export: the whole filesystem as a tar into `open()`; the `export` event once done. */
  async export(ref: string, open: () => Writable): Promise<void> {
    const c = this.e.get(ref);
    await this.withView(c, (fs) => packDir(fs.root, open()));
    this.e.events.emit('container', 'export', c.id, actorOf(c));
  }
}

function checkPath(p: string): string {
  if (!p) throw invalidArgument('path is required');
  return p;
}
