/**
 * Overlay snapshotter. Committed snapshots are image layers keyed by chain id, each unpacked once
 * under `<root>/snapshots/layers/<hex>/fs` and shared by every image and container that has it.
 * Active snapshots are containers' writable layers: `<root>/snapshots/active/<key>/{fs,work}`.
 * It returns mounts and never mounts (the engine does). Its records are kept by the
 * `SnapshotRecords` it is given (SQLite, ../metadata/snapshot-records.ts).
 */
import { closeSync, fstatSync, lstatSync, mkdirSync, promises as fsp, renameSync, type BigIntStats } from 'node:fs';
import {
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  getXattr,
  openat2,
} from '../base/syscalls.js';
import { fdPath, openChild } from '../archive/rooted.js';
import { removeTree } from '../base/janitor.js';
import { duBytes } from '../base/tree-bytes.js';
import { applyLayer, packUpper } from '../archive/layer.js';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BerthError, codeOfErrno, conflict, notFound } from '../base/errors.js';
import { claim } from '../content/lease.js';
import type { Change, LayerInfo, LayerStore, Mount, SnapshotRecords, SnapshotSweep, Snapshotter } from './types.js';

export type { LayerInfo };

const run = promisify(execFile);
/** How long `usages` walks before it yields to the event loop. */
const USAGE_SLICE_MS = 10;
/** Entries a layer may have to be walked in the daemon's thread; a larger one goes to `du`. */
const USAGE_WALK_MAX = 4096;
/** Large layers per `du` (its argv stays far below ARG_MAX: ~100 bytes a path). */
const USAGE_BATCH = 256;
/** Bind-mount targets the engine adds; not changes of the container. */
const HIDDEN = new Set(['/etc/hosts', '/etc/hostname', '/etc/resolv.conf']);

/** A character device 0/0: overlayfs's whiteout. */
function isWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

/**
 * Whether the directory we hold `dirFd` of is an overlay opaque directory (`trusted.overlay.opaque`
 * = y), read through the fd (/proc/self/fd/N/.): nothing renamed meanwhile can point it elsewhere.
 */
function isOpaque(dirFd: number): boolean {
  return getXattr(`${fdPath(dirFd)}/.`, 'trusted.overlay.opaque') === 'y';
}

/** dockerd's statDifferent (pkg/archive/changes_unix.go): no times or size for directories. */
function statDifferent(a: BigIntStats, b: BigIntStats): boolean {
  return (
    a.mode !== b.mode ||
    a.uid !== b.uid ||
    a.gid !== b.gid ||
    a.rdev !== b.rdev ||
    (!b.isDirectory() && (a.mtimeNs !== b.mtimeNs || a.size !== b.size))
  );
}
const HEX = /^[a-f0-9]{64}$/;

export class OverlaySnapshotter implements Snapshotter, LayerStore, SnapshotSweep {
  private readonly dir: string;
  /** Chain ids whose directory is being put in place (between the rename and the record). */
  private readonly landing = new Set<string>();

  constructor(
    root: string,
    private readonly records: SnapshotRecords,
  ) {
    this.dir = join(root, 'snapshots');
  }

  async init(): Promise<void> {
    // closed to other users (dockerd's overlay2 is 0710, its layers 0700): a host user must not
    // reach a layer's or a container's files by their host path (a setuid binary would run as root)
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o710 });
    for (const d of ['layers', 'active', 'empty']) await fsp.mkdir(join(this.dir, d), { recursive: true, mode: 0o700 });
    await fsp.rm(join(this.dir, 'tmp'), { recursive: true, force: true }); // half-unpacked layers of a crash
    await fsp.mkdir(join(this.dir, 'tmp'), { recursive: true, mode: 0o700 });
    await Promise.all([
      fsp.chmod(this.dir, 0o710),
      ...['layers', 'active', 'empty'].map((d) => fsp.chmod(join(this.dir, d), 0o700)),
    ]);
  }

  private layerDir(chainId: string): string {
    return join(this.dir, 'layers', chainId.replace(/^sha256:/, ''), 'fs');
  }

  layer(chainId: string): LayerInfo | undefined {
    return this.records.layer(chainId);
  }

  allLayers(): LayerInfo[] {
    return this.records.layers();
  }

  /**
   * Adds the committed layer `chainId` on `parent`, filled by `populate(dir)` in a temp dir and
   * renamed into place. Does nothing when the layer exists (layers are stored once).
   */
  async commitLayer(info: LayerInfo, populate: (dir: string) => Promise<void>): Promise<void> {
    claim('snapshot', info.chainId); // found or about to land: held before it is visible
    if (this.layer(info.chainId)) return;
    const tmp = join(this.dir, 'tmp', randomBytes(8).toString('hex'));
    await fsp.mkdir(tmp, { recursive: true });
    try {
      await populate(tmp);
      if (this.layer(info.chainId)) return; // a concurrent unpack of the same layer won
      const final = this.layerDir(info.chainId);
      this.landing.add(info.chainId);
      try {
        await fsp.mkdir(join(final, '..'), { recursive: true });
        await fsp.rm(final, { recursive: true, force: true });
        await fsp.rename(tmp, final);
        this.records.addLayer(info);
      } finally {
        this.landing.delete(info.chainId);
      }
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  /** Removes a committed layer nobody builds on. Conflict while a layer or container uses it. */
  async removeLayer(chainId: string): Promise<void> {
    if (this.records.hasChildren(chainId)) throw conflict(`layer ${chainId} is in use`);
    this.records.deleteLayer(chainId);
    await fsp.rm(join(this.layerDir(chainId), '..'), { recursive: true, force: true });
  }

  activeParents(): Array<string | null> {
    return this.records.activeParents();
  }

  async orphanLayerDirs(): Promise<string[]> {
    const out: string[] = [];
    for (const hex of await fsp.readdir(join(this.dir, 'layers'))) {
      const chainId = `sha256:${hex}`;
      if (HEX.test(hex) && !this.landing.has(chainId) && !this.layer(chainId)) out.push(chainId);
    }
    return out;
  }

  removeLayerUnless(chainId: string, keep: () => boolean): boolean {
    if (keep() || !this.layer(chainId)) return false;
    if (this.records.hasChildren(chainId)) throw conflict(`layer ${chainId} is in use`);
    this.records.deleteLayer(chainId);
    this.discard(chainId);
    return true;
  }

  async removeOrphanDir(chainId: string, keep: () => boolean): Promise<number | null> {
    const dir = join(this.layerDir(chainId), '..');
    const bytes = await treeBytes(dir);
    if (keep() || this.landing.has(chainId) || this.layer(chainId)) return null;
    return this.discard(chainId) ? bytes : null;
  }

  /** Moves a layer's directory out of `layers/` at once (then deletes it in the background of the caller). */
  private discard(chainId: string): boolean {
    const from = join(this.layerDir(chainId), '..');
    const to = join(this.dir, 'tmp', `gc-${randomBytes(8).toString('hex')}`);
    try {
      renameSync(from, to);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      const what = `removing layer ${chainId}: ${code ?? String(e)}`;
      throw new BerthError(code ? codeOfErrno(code) : 'Internal', what, { cause: e });
    }
    void fsp.rm(to, { recursive: true, force: true }).catch(() => undefined); // a leftover is wiped by the next init
    return true;
  }

  /** Lower dirs of a chain, top first. */
  private lowers(parent: string | null): string[] {
    const out: string[] = [];
    for (let c = parent; c;) {
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

  async packDiff(key: string, out: Writable): Promise<void> {
    this.activeParent(key);
    await packUpper(this.upperDir(key), out);
  }

  async applyDiff(key: string, tarPath: string): Promise<void> {
    this.activeParent(key);
    await applyLayer(tarPath, this.upperDir(key));
  }

  private activeDir(key: string): string {
    return join(this.dir, 'active', key);
  }

  private upperDir(key: string): string {
    return join(this.activeDir(key), 'fs');
  }

  async prepare(key: string, parent: string | null): Promise<Mount[]> {
    const known = this.records.activeParent(key);
    if (known !== undefined && known !== parent) throw conflict(`snapshot ${key} exists with another parent`);
    const lowers = this.lowers(parent);
    // the key's dir is private; fs keeps 0755 (the merged root takes the upper dir's mode). Three
    // mkdirs, synchronously: through the pool each waited behind its queue (a container's create)
    mkdirSync(this.activeDir(key), { recursive: true, mode: 0o700 });
    mkdirSync(join(this.activeDir(key), 'fs'), { recursive: true });
    mkdirSync(join(this.activeDir(key), 'work'), { recursive: true });
    if (known === undefined) this.records.addActive(key, parent);
    return [this.mountOf(key, lowers)];
  }

  private mountOf(key: string, lowers: string[]): Mount {
    return {
      type: 'overlay',
      source: 'overlay',
      options: [
        `lowerdir=${lowers.join(':')}`,
        `upperdir=${this.upperDir(key)}`,
        `workdir=${join(this.activeDir(key), 'work')}`,
      ],
    };
  }

  private activeParent(key: string): string | null {
    const parent = this.records.activeParent(key);
    if (parent === undefined) throw notFound(`snapshot ${key} not found`);
    return parent;
  }

  /** Keys of the active snapshots starting with `prefix`. */
  activeKeys(prefix: string): string[] {
    return this.records.activeKeys(prefix);
  }

  mounts(key: string): Mount[] {
    return [this.mountOf(key, this.lowers(this.activeParent(key)))];
  }

  async remove(key: string): Promise<void> {
    this.forget(key);
    await removeTree(this.activeDir(key));
  }

  forget(key: string): void {
    this.records.deleteActive(key);
  }

  /**
   * Docker's A/C/D of the container's upper dir, as dockerd's overlay driver reports it (its naive
   * diff, archive.ChangesDirs): a path only in the upper dir is added; one in a lower layer is
   * modified when its type, mode, owner or device differ, or for a non-directory its mtime or size
   * (a directory's own times and size are no measure: overlay copies a directory up to change
   * anything below it); a directory with a change below it is reported modified, before its
   * entries. The upper dir is walked through fds (a running container may swap a directory for a
   * symlink meanwhile: the walk never follows one), and a path is looked up in the lower layers by
   * the kernel inside each layer's root.
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
      /** The path's stat in the topmost lower layer that has it (null: none has it, or a whiteout hides it). */
      const inLower = (rel: string): BigIntStats | null => {
        for (const lfd of lowerFds) {
          let fd: number;
          try {
            fd = openat2(lfd, rel.slice(1), O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
          } catch {
            continue;
          }
          try {
            const st = fstatSync(fd, { bigint: true });
            return isWhiteout(st) ? null : st;
          } finally {
            closeSync(fd);
          }
        }
        return null;
      };
      /**
       * The names the lower layers show in directory `rel` (what an opaque upper directory hides):
       * layer by layer from the top, less the names a higher layer whites out, down to a layer
       * where it is not a directory or is opaque itself.
       */
      const lowerNames = async (rel: string): Promise<Set<string>> => {
        const names = new Set<string>();
        const hidden = new Set<string>();
        for (const lfd of lowerFds) {
          let fd: number;
          try {
            fd = openat2(lfd, rel.slice(1), O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
          } catch {
            continue;
          }
          try {
            const st = fstatSync(fd, { bigint: true });
            if (!st.isDirectory()) break; // a file (or a whiteout) here hides the layers below
            for (const n of await fsp.readdir(fdPath(fd))) {
              let cst: BigIntStats;
              try {
                cst = lstatSync(fdPath(fd, n), { bigint: true });
              } catch {
                continue;
              }
              if (isWhiteout(cst)) hidden.add(n);
              else if (!hidden.has(n)) names.add(n);
            }
            if (isOpaque(fd)) break;
          } finally {
            closeSync(fd);
          }
        }
        return names;
      };
      /** `hidden`: below an opaque directory (the lower layers' entries there are not seen). */
      const walk = async (dirFd: number, rel: string, added: boolean, hidden: boolean): Promise<void> => {
        const entries = await fsp.readdir(fdPath(dirFd));
        // an opaque directory (removed and made again) hides the lower layers' entries, and so
        // everything below it: those not made again are deleted
        const here = new Set(entries);
        const hides = hidden || (!added && rel !== '' && isOpaque(dirFd));
        const gone = !added && hides ? [...(await lowerNames(rel))].filter((n) => !here.has(n)) : [];
        for (const name of [...entries, ...gone].sort((a, b) => a.localeCompare(b))) {
          const p = `${rel}/${name}`;
          if (HIDDEN.has(p)) continue;
          if (!here.has(name)) {
            out.push({ Path: p, Kind: 2 });
            continue;
          }
          let fd: number;
          try {
            fd = openChild(dirFd, name);
          } catch {
            continue; // gone since readdir
          }
          try {
            const st = fstatSync(fd, { bigint: true });
            if (isWhiteout(st)) {
              out.push({ Path: p, Kind: 2 });
              continue;
            }
            const old = added ? null : inLower(p);
            if (!old) {
              out.push({ Path: p, Kind: 1 });
              if (st.isDirectory()) await walk(fd, p, true, hides);
              continue;
            }
            const at = out.length;
            const modified = statDifferent(old, st);
            if (modified) out.push({ Path: p, Kind: 0 });
            if (st.isDirectory()) {
              await walk(fd, p, !old.isDirectory(), hides);
              if (!modified && out.length > at) out.splice(at, 0, { Path: p, Kind: 0 });
            }
          } finally {
            closeSync(fd);
          }
        }
      };
      const upperFd = openat2(-100, this.upperDir(key), O_PATH | O_DIRECTORY, 0);
      try {
        await walk(upperFd, '', false, false);
      } finally {
        closeSync(upperFd);
      }
    } finally {
      for (const fd of lowerFds) closeSync(fd);
    }
    return out;
  }

  /**
   * Each writable layer's size as dockerd's overlay2 reports it (its files' bytes, a hard link
   * once, directories' own sizes left out: 0 for a container that wrote nothing), walked in this
   * thread (../base/tree-bytes.ts), a slice of layers at a time: the event loop is given back
   * every few milliseconds. A layer past USAGE_WALK_MAX entries is measured by `du -sb` in its own
   * process instead, which counts its directories' 4 KiB too.
   */
  async usages(keys: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const large: string[] = [];
    let since = performance.now();
    for (const k of keys) {
      const bytes = duBytes(this.upperDir(k), USAGE_WALK_MAX, false);
      if (bytes === undefined) large.push(k);
      else out.set(k, bytes);
      if (performance.now() - since > USAGE_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        since = performance.now();
      }
    }
    for (let i = 0; i < large.length; i += USAGE_BATCH) {
      for (const [k, bytes] of await this.duOf(large.slice(i, i + USAGE_BATCH))) out.set(k, bytes);
    }
    return out;
  }

  async usage(key: string): Promise<number> {
    return duBytes(this.upperDir(key), USAGE_WALK_MAX, false) ?? (await this.duOf([key])).get(key)!;
  }

  /** `du -sb` of large layers, in its own process under a deadline (0 for one it could not read). */
  private async duOf(keys: readonly string[]): Promise<Map<string, number>> {
    const byDir = new Map(keys.map((k) => [this.upperDir(k), k]));
    const out = new Map<string, number>(keys.map((k) => [k, 0]));
    let stdout: string;
    try {
      // a layer removed meanwhile makes du fail with the others' lines printed
      stdout = (await run('du', ['-sb', '--', ...byDir.keys()], { timeout: 60_000, maxBuffer: 64 << 20 })).stdout;
    } catch (e) {
      stdout = String((e as { stdout?: unknown }).stdout ?? '');
    }
    for (const line of stdout.split('\n')) {
      const tab = line.indexOf('\t');
      const key = tab > 0 ? byDir.get(line.slice(tab + 1)) : undefined;
      if (key !== undefined) out.set(key, Number(line.slice(0, tab)) || 0);
    }
    return out;
  }
}

/** Bytes of the regular files under `dir` (what removing it frees, as sizes count). */
async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += await treeBytes(p);
    else if (e.isFile()) n += (await fsp.lstat(p).catch(() => ({ size: 0 }))).size;
  }
  return n;
}
