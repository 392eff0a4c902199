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
 * Overlay snapshots. Committed snapshots are image layers, keyed by chain id; active snapshots
 * are containers' writable layers keyed by the caller's key (the container id).
 */
export interface Snapshotter {
  /** Creates the writable snapshot `key` on top of committed `parent` (null: empty) and returns its mounts. Idempotent for an existing key with the same parent. */
  prepare(key: string, parent: string | null): Promise<Mount[]>;
  /** Mounts of an existing active snapshot. NotFound if none. */
  mounts(key: string): Mount[];
  /** Removes an active snapshot (its upper dir). Idempotent. */
  remove(key: string): Promise<void>;
  /** Drops an active snapshot's record at once (its parent layers can go); `remove` deletes its files later. Idempotent. */
  forget(key: string): void;
  /** Changes in the writable layer relative to its parent. */
  diff(key: string): Promise<Change[]>;
  /** The writable layer's directory (the overlay's upper dir). */
  upperDir(key: string): string;
  /** Bytes used by the writable layer. */
  usage(key: string): Promise<number>;
}

/** Performs the mounts a snapshotter describes (the engine's and the builder's). */
export interface Mounter {
  mountAll(mounts: Mount[], target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}
