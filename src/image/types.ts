import type { Readable, Writable } from 'node:stream';
import type { Digest } from '../base/digest.js';
import type { ImageConfig, ImageRuntimeConfig, HistoryEntry } from '../spec/image.js';
import type { GcReport } from '../metadata/gc.js';

/** An image as the engine and the API see it. */
export interface ImageRecord {
  /** Image id: the digest of its config blob. */
  id: Digest;
  /** Normalized references, e.g. `busybox:latest`, `registry:5000/a/b:v1`. */
  repoTags: string[];
  /** `name@sha256:...` references of manifests known for this image. */
  repoDigests: string[];
  /** Parent image id for images made locally by commit/build ('' otherwise). */
  parent: string;
  /** RFC 3339, from the config (`created`). */
  created: string;
  /** Sum of the uncompressed sizes of its layers, in bytes. */
  size: number;
  config: ImageConfig;
  /** Chain id of the top layer = the snapshot key its containers are prepared from; null when it has no layers. */
  topChainId: string | null;
}

export interface RemoveResult {
  Untagged?: string;
  Deleted?: string;
}

export interface CommitOptions {
  /** Snapshot key of the container's writable layer. */
  snapshotKey: string;
  /** Image the container was made from. */
  parent: ImageRecord;
  /** Runtime config of the new image (the engine merges container config and --change). */
  config: ImageRuntimeConfig;
  author?: string;
  comment?: string;
  /** Tag to give the new image, normalized by the store. */
  ref?: string;
  /** `created_by` of the history entry. */
  createdBy?: string;
}

/**
 * The local image store: names/tags -> image configs -> layers in content/, unpacked into snapshot/.
 * Every method that takes `ref` accepts a name[:tag], a full or short (>=1 hex char prefix, unique) id,
 * `sha256:<id>`, or `name@digest`. Errors: NotFound `No such image: <ref>`, Conflict when a
 * removal is refused, InvalidArgument for a bad reference or archive.
 */
export interface ImageStore {
  list(): ImageRecord[];
  get(ref: string): ImageRecord;
  /** Gives `target` (name[:tag]) to the image `ref` names; moves the tag off any other image. */
  tag(ref: string, target: string): void;
  /**
   * `docker rmi`: untags `ref` (a tag) or deletes the image (id). `isUsed(imageId)` says whether a
   * container uses it: then Conflict unless force. Returns Docker's list of Untagged/Deleted entries.
   */
  remove(
    ref: string,
    opts: { force: boolean; noPrune: boolean },
    isUsed: (id: Digest) => boolean,
  ): Promise<RemoveResult[]>;
  /** `docker import`: a rootfs tar (optionally gzip) becomes a one-layer image. */
  importRootfs(
    input: Readable,
    opts: { ref?: string; message?: string; config?: ImageRuntimeConfig; platform?: string },
  ): Promise<ImageRecord>;
  /** `docker load`: docker-archive or OCI-layout tar (optionally gzip). Returns the refs or ids loaded. */
  load(input: Readable): Promise<string[]>;
  /** `docker save`: a tar readable by `docker load` and by OCI-layout tools (both layouts in one tar). */
  save(refs: string[], out: Writable): Promise<void>;
  history(ref: string): Array<HistoryEntry & { id: string; size: number }>;
  /**
   * Removes dangling images (all unused ones with all=true), then collects garbage;
   * `spaceReclaimed` is the bytes that left the disk.
   */
  prune(opts: {
    all: boolean;
    isUsed: (id: Digest) => boolean;
    labelFilter?: (labels: Record<string, string>) => boolean;
    /** only images created before this time (epoch ms): the `until` filter */
    until?: number;
  }): Promise<{
    deleted: RemoveResult[];
    spaceReclaimed: number;
  }>;
  /** Turns a container's writable layer into a new image on top of its parent. */
  commit(opts: CommitOptions): Promise<ImageRecord>;
  /** Bytes used by all layers and how many images share them (for /system/df). */
  diskUsage(): { layersSize: number };
  /**
   * Collects the blobs and layers that no image, build cache entry, live lease or container
   * references (orphans of a crash or a failed pull/build/load). One collection at a time.
   */
  collectGarbage(): Promise<GcReport>;
  /** Runs `work` holding a lease (pull, build, load, import, commit): what it lands stays until it settles. */
  withLease<T>(label: string, work: () => Promise<T>): Promise<T>;

  // for distribution: pull writes layers and registers images; push reads them
  hasLayer(diffId: string): boolean;
  ingestLayer(input: Readable, expectedDiffId: string): Promise<void>;
  ingestLayerFile(
    fill: (path: string) => Promise<{ digest: string; size: number }>,
    expectedDiffId: string,
  ): Promise<void>;
  unpackLayer(diffIds: readonly string[], i: number): Promise<void>;
  register(configBytes: Buffer, names: { tag?: string; digestRef?: string }): Promise<ImageRecord>;
  addDigest(digestRef: string, id: string): void;
  configBytes(id: string): Buffer;
  layerStream(diffId: string): Readable;
  layerSize(diffId: string): number;
}
