/**
 * Overlay snapshotter. Committed snapshots are image layers keyed by chain id, each unpacked once
 * under `<root>/snapshots/layers/<hex>/fs` and shared by every image and container that has it.
 * Active snapshots are containers' writable layers: `<root>/snapshots/active/<key>/{fs,work}`.
 * It returns mounts and never mounts (the engine does).
 */
import { closeSync, fstatSync, promises as fsp } from 'node:fs';
import { O_DIRECTORY, O_NOFOLLOW, O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2 } from '../base/syscalls.js';
import { fdPath, openChild } from '../archive/rooted.js';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import { conflict, notFound } from '../base/errors.js';
import type { Change, Mount, Snapshotter } from './types.js';

const run = promisify(execFile);
const MIGRATIONS = [
  `CREATE TABLE layers (chain_id TEXT PRIMARY KEY, parent TEXT, diff_id TEXT NOT NULL, size INTEGER NOT NULL);
   CREATE TABLE active (key TEXT PRIMARY KEY, parent TEXT)`,
];
/** Bind-mount targets the engine adds; not changes of the container. */
const HIDDEN = new Set(['/etc/hosts', '/etc/hostname', '/etc/resolv.conf']);

export interface LayerInfo {
  chainId: string;
  parent: string | null;
  diffId: string;
  size: number;
}

export class OverlaySnapshotter implements Snapshotter {
  private readonly dir: string;

  constructor(root: string, private readonly db: Db) {
    this.dir = join(root, 'snapshots');
    migrate(db, 'snapshots', MIGRATIONS);
  }

  async init(): Promise<void> {
    // closed to other users (dockerd's overlay2 is 0710, its layers 0700): a host user must not
    // reach a layer's or a container's files by their host path (a setuid binary would run as root)
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o710 });
    for (const d of ['layers', 'active', 'empty']) await fsp.mkdir(join(this.dir, d), { recursive: true, mode: 0o700 });
    await fsp.rm(join(this.dir, 'tmp'), { recursive: true, force: true }); // half-unpacked layers of a crash
    await fsp.mkdir(join(this.dir, 'tmp'), { recursive: true, mode: 0o700 });
    await Promise.all([fsp.chmod(this.dir, 0o710), ...['layers', 'active', 'empty'].map((d) => fsp.chmod(join(this.dir, d), 0o700))]);
  }

  private layerDir(chainId: string): string {
    return join(this.dir, 'layers', chainId.replace(/^sha256:/, ''), 'fs');
  }

  layer(chainId: string): LayerInfo | undefined {
    const r = this.db.prepare('SELECT chain_id, parent, diff_id, size FROM layers WHERE chain_id = ?').get(chainId) as
      | { chain_id: string; parent: string | null; diff_id: string; size: number }
      | undefined;
    return r && { chainId: r.chain_id, parent: r.parent, diffId: r.diff_id, size: r.size };
  }

  allLayers(): LayerInfo[] {
    return (this.db.prepare('SELECT chain_id, parent, diff_id, size FROM layers').all() as Array<{ chain_id: string; parent: string | null; diff_id: string; size: number }>).map((r) => ({
      chainId: r.chain_id, parent: r.parent, diffId: r.diff_id, size: r.size,
    }));
  }

  /**
   * Adds the committed layer `chainId` on `parent`, filled by `populate(dir)` in a temp dir and
   * renamed into place. Does nothing when the layer exists (layers are stored once).
   */
  async commitLayer(info: LayerInfo, populate: (dir: string) => Promise<void>): Promise<void> {
    if (this.layer(info.chainId)) return;
    const tmp = join(this.dir, 'tmp', randomBytes(8).toString('hex'));
    await fsp.mkdir(tmp, { recursive: true });
    try {
      await populate(tmp);
      if (this.layer(info.chainId)) return; // a concurrent unpack of the same layer won
      const final = this.layerDir(info.chainId);
      await fsp.mkdir(join(final, '..'), { recursive: true });
      await fsp.rm(final, { recursive: true, force: true });
      await fsp.rename(tmp, final);
      this.db.prepare('INSERT OR IGNORE INTO layers (chain_id, parent, diff_id, size) VALUES (?, ?, ?, ?)').run(info.chainId, info.parent, info.diffId, info.size);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  /** Removes a committed layer nobody builds on. Conflict while a layer or container uses it. */
  async removeLayer(chainId: string): Promise<void> {
    const child = this.db.prepare('SELECT 1 FROM layers WHERE parent = ? UNION SELECT 1 FROM active WHERE parent = ?').get(chainId, chainId);
    if (child) throw conflict(`layer ${chainId} is in use`);
    this.db.prepare('DELETE FROM layers WHERE chain_id = ?').run(chainId);
    await fsp.rm(join(this.layerDir(chainId), '..'), { recursive: true, force: true });
  }

  /** Lower dirs of a chain, top first. */
  private lowers(parent: string | null): string[] {
    const out: string[] = [];
    for (let c = parent; c; ) {
      const l = this.layer(c);
      if (!l) throw notFound(`layer ${c} not found`);
      out.push(this.layerDir(c));
      c = l.parent;
    }
    return out.length ? out : [join(this.dir, 'empty')];
  }

  /**
   * A read-only view of committed layer `chainId` (null: empty): a directory to read when the
   * chain has one layer, else a lower-only (read-only) overlay mount for the caller to mount.
   */
  view(chainId: string | null): { dir: string } | { mount: Mount } {
    const lowers = this.lowers(chainId);
    if (lowers.length === 1) return { dir: lowers[0]! };
    return { mount: { type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`] } };
  }

  /** Moves a prepared snapshot's upper dir into committed layer `info` (containerd's commit: no copy). */
  async commitActive(key: string, info: LayerInfo): Promise<void> {
    await this.commitLayer(info, async (dir) => {
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.rename(this.upperDir(key), dir);
    });
    await this.remove(key);
  }

  private activeDir(key: string): string {
    return join(this.dir, 'active', key);
  }

  upperDir(key: string): string {
    return join(this.activeDir(key), 'fs');
  }

  async prepare(key: string, parent: string | null): Promise<Mount[]> {
    const row = this.db.prepare('SELECT parent FROM active WHERE key = ?').get(key) as { parent: string | null } | undefined;
    if (row && row.parent !== parent) throw conflict(`snapshot ${key} exists with another parent`);
    const lowers = this.lowers(parent);
    // the key's dir is private; fs keeps 0755 (the merged root takes the upper dir's mode)
    await fsp.mkdir(this.activeDir(key), { recursive: true, mode: 0o700 });
    await Promise.all([fsp.mkdir(join(this.activeDir(key), 'fs'), { recursive: true }), fsp.mkdir(join(this.activeDir(key), 'work'), { recursive: true })]);
    if (!row) this.db.prepare('INSERT INTO active (key, parent) VALUES (?, ?)').run(key, parent);
    return [this.mountOf(key, lowers)];
  }

  private mountOf(key: string, lowers: string[]): Mount {
    return {
      type: 'overlay',
      source: 'overlay',
      options: [`lowerdir=${lowers.join(':')}`, `upperdir=${this.upperDir(key)}`, `workdir=${join(this.activeDir(key), 'work')}`],
    };
  }

  private activeParent(key: string): string | null {
    const row = this.db.prepare('SELECT parent FROM active WHERE key = ?').get(key) as { parent: string | null } | undefined;
    if (!row) throw notFound(`snapshot ${key} not found`);
    return row.parent;
  }

  /** Keys of the active snapshots starting with `prefix`. */
  activeKeys(prefix: string): string[] {
    return (this.db.prepare('SELECT key FROM active WHERE key LIKE ?').all(`${prefix}%`) as Array<{ key: string }>).map((r) => r.key);
  }

  mounts(key: string): Mount[] {
    return [this.mountOf(key, this.lowers(this.activeParent(key)))];
  }

  async remove(key: string): Promise<void> {
    this.forget(key);
    await fsp.rm(this.activeDir(key), { recursive: true, force: true });
  }

  forget(key: string): void {
    this.db.prepare('DELETE FROM active WHERE key = ?').run(key);
  }

  /**
   * Docker's A/C/D of the container's upper dir. The upper dir is walked through fds (a running
   * container may swap a directory for a symlink meanwhile: the walk never follows one), and a
   * path is looked up in the lower layers by the kernel inside each layer's root.
   */
  async diff(key: string): Promise<Change[]> {
    const lowers = this.lowers(this.activeParent(key));
    const lowerFds: number[] = [];
    const out: Change[] = [];
    try {
      for (const l of lowers) {
        try {
          lowerFds.push(openat2(-100, l, O_PATH | O_DIRECTORY, 0));
        } catch {
          /* an empty chain's placeholder that was never made */
        }
      }
      const inLower = (rel: string) => lowerFds.some((fd) => {
        try {
          closeSync(openat2(fd, rel.slice(1), O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
          return true;
        } catch {
          return false;
        }
      });
      const walk = async (dirFd: number, rel: string): Promise<void> => {
        for (const name of (await fsp.readdir(fdPath(dirFd))).sort((a, b) => a.localeCompare(b))) {
          const p = `${rel}/${name}`;
          if (HIDDEN.has(p)) continue;
          let fd: number;
          try {
            fd = openChild(dirFd, name);
          } catch {
            continue; // gone since readdir
          }
          try {
            const st = fstatSync(fd);
            if (st.isCharacterDevice() && st.rdev === 0) {
              out.push({ Path: p, Kind: 2 });
              continue;
            }
            out.push({ Path: p, Kind: inLower(p) ? 0 : 1 });
            if (st.isDirectory()) await walk(fd, p);
          } finally {
            closeSync(fd);
          }
        }
      };
      const upperFd = openat2(-100, this.upperDir(key), O_PATH | O_DIRECTORY, 0);
      try {
        await walk(upperFd, '');
      } finally {
        closeSync(upperFd);
      }
    } finally {
      for (const fd of lowerFds) closeSync(fd);
    }
    return out;
  }

  async usage(key: string): Promise<number> {
    try {
      const { stdout } = await run('du', ['-sb', this.upperDir(key)]);
      return Number(stdout.split('\t')[0]) || 0;
    } catch {
      return 0;
    }
  }
}
