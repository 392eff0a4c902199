import type { Writable } from 'node:stream';
import { internal } from '../base/errors.js';

/** A mount the caller performs; the snapshotter only describes mounts, it never mounts. */
export interface Mount {
  type: string; // 'overlay' | 'bind'
  source: string;
  options: string[];
}

/** One change in a container's writable layer, as `docker diff` reports it. */
export interface Change {
  Path: string;
  /** 0 modified, 1 added, 2 deleted */
  Kind: 0 | 1 | 2;
}

/**
 * Active snapshots: containers' (and build steps') writable layers, keyed by the caller's key
 * (the container id), on top of a committed layer. Their files are reached only through the
 * mounts `prepare` returns and the role methods below (the overlay's upper dir does not leak).
 */
export interface Snapshotter {
  /**
   * Creates the writable snapshot `key` on top of committed `parent` (null: empty) and returns its
   * mounts. Idempotent for an existing key with the same parent.
   */
  prepare(key: string, parent: string | null): Promise<Mount[]>;
  /** Mounts of an existing active snapshot. NotFound if none. */
  mounts(key: string): Mount[];
  /** Removes an active snapshot (its upper dir). Idempotent. */
  remove(key: string): Promise<void>;
  /** Drops an active snapshot's record at once (its parent layers can go); `remove` deletes its files later. Idempotent. */
  forget(key: string): void;
  /** Changes in the writable layer relative to its parent. */
  diff(key: string): Promise<Change[]>;
  /** Writes the writable layer's changes to `out` as a layer tar (overlay whiteouts become OCI's). */
  packDiff(key: string, out: Writable): Promise<void>;
  /** Applies the layer tar at `tarPath` onto the writable layer (OCI whiteouts become overlay's); unmounted only. */
  applyDiff(key: string, tarPath: string): Promise<void>;
  /** Bytes used by the writable layer. */
  usage(key: string): Promise<number>;
  /**
   * Bytes used by each writable layer in `keys` (0 for one that is gone), as `du -sb` counts them,
   * with no process per layer (`system df`, `ps --size` over thousands of containers; only very large
   * layers go to a `du`).
   */
  usages(keys: readonly string[]): Promise<Map<string, number>>;
  /** Keys of the active snapshots that start with `prefix` (what a crash left of a builder's steps). */
  activeKeys(prefix: string): string[];
}

/** A committed snapshot: an image layer, keyed by its chain id. */
export interface LayerInfo {
  chainId: string;
  parent: string | null;
  diffId: string;
  /** the layer tar's size (uncompressed), in bytes */
  size: number;
}

/** Committed snapshots (image layers): what the image store, the builder and the collector use. */
export interface LayerStore {
  layer(chainId: string): LayerInfo | undefined;
  allLayers(): LayerInfo[];
  /** Adds committed layer `info`, filled by `populate(dir)`; a no-op when it exists (layers are stored once). */
  commitLayer(info: LayerInfo, populate: (dir: string) => Promise<void>): Promise<void>;
  /** Removes a committed layer nobody builds on. Conflict while a layer or an active snapshot uses it. */
  removeLayer(chainId: string): Promise<void>;
  /** A read-only view of committed layer `chainId` (null: empty): a directory, or a mount for the caller. */
  view(chainId: string | null): { dir: string } | { mount: Mount };
  /** Turns active snapshot `key` into committed layer `info` (no copy) and removes the active snapshot. */
  commitActive(key: string, info: LayerInfo): Promise<void>;
}

/** What the garbage collector needs of the snapshotter beyond the layer records. */
export interface SnapshotSweep {
  /** The parents of every active snapshot (containers' and builds' layers are in use). */
  activeParents(): Array<string | null>;
  /** Chain ids of the layer directories on disk that have no record (a crash between rename and record). */
  orphanLayerDirs(): Promise<string[]>;
  /**
   * Removes committed layer `chainId` (record and files) unless `keep()`; the check, the record's
   * removal and moving the files aside happen with no await in between. Returns whether it went.
   * Conflict while a layer or an active snapshot builds on it.
   */
  removeLayerUnless(chainId: string, keep: () => boolean): boolean;
  /** Deletes the files of an orphan layer directory unless `keep()`; returns the bytes freed (null: kept). */
  removeOrphanDir(chainId: string, keep: () => boolean): Promise<number | null>;
}

/**
 * Where the snapshotter keeps its records (layers and active snapshots). ../metadata/ keeps them
 * in SQLite (`SqliteSnapshotRecords`); the snapshotter needs nothing above it.
 */
export interface SnapshotRecords {
  layer(chainId: string): LayerInfo | undefined;
  layers(): LayerInfo[];
  /** Adds the record; an existing one stays. */
  addLayer(info: LayerInfo): void;
  deleteLayer(chainId: string): void;
  /** Whether a layer or an active snapshot has `chainId` as its parent. */
  hasChildren(chainId: string): boolean;
  /** The parent of active snapshot `key`: undefined when there is none, null for an empty parent. */
  activeParent(key: string): string | null | undefined;
  addActive(key: string, parent: string | null): void;
  deleteActive(key: string): void;
  activeKeys(prefix: string): string[];
  activeParents(): Array<string | null>;
}

/** Performs the mounts a snapshotter describes (the engine's and the builder's). */
export interface Mounter {
  mountAll(mounts: Mount[], target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}

/** The writable directory of the overlay mount `prepare` returned (for a caller that writes into it unmounted). */
export function upperDirOf(mounts: readonly Mount[]): string {
  for (const m of mounts) {
    const opt = m.options.find((o) => o.startsWith('upperdir='));
    if (m.type === 'overlay' && opt) return opt.slice('upperdir='.length);
  }
  throw internal('no overlay upper dir in these mounts');
}
