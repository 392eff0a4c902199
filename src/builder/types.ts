/**
 * The builder's types, shared by the service (builder.ts), one build's executor (build.ts) and
 * the steps (steps.ts, run-step.ts, copy-step.ts): the services it is given, a build request,
 * where its output goes. Kept apart so those modules import them downward, not from each other.
 */
import type { Writable } from 'node:stream';
import type { Clock } from '../base/clock.js';
import type { Credentials } from '../distribution/client.js';
import type { ImageRecord } from '../image/types.js';
import type { Db } from '../metadata/db.js';
import type { BuildRunner, RuntimeName } from '../runtime/types.js';
import type { LayerStore, Mounter, Snapshotter } from '../snapshot/types.js';
import type { BuildCache } from './cache.js';

/** What the builder needs of the image store. */
export interface BuilderImages {
  get(ref: string): ImageRecord;
  register(configBytes: Buffer, names: { tag?: string }): Promise<ImageRecord>;
  tag(ref: string, target: string): void;
  hasLayer(diffId: string): boolean;
  writeLayer(fill: (out: NodeJS.WritableStream & Writable) => Promise<void>): Promise<{ diffId: string; size: number }>;
  unpack(diffIds: readonly string[]): Promise<string | null>;
  retain(chains: () => string[][]): void;
  collectLayers(): Promise<number>;
  /** Holds a lease for `work`: what a build lands stays until it is cached or registered. */
  withLease<T>(label: string, work: () => Promise<T>): Promise<T>;
}

export interface BuilderDeps {
  /** `<root>/builder`: cache mounts */
  root: string;
  /** scratch space: contexts, bundles, secrets */
  scratch: string;
  db: Db;
  images: BuilderImages;
  snapshots: Snapshotter & LayerStore;
  mounter: Mounter;
  runtime: BuildRunner;
  defaultRuntime: RuntimeName;
  /** the time written into image configs and the cache's records (systemClock when not given) */
  clock?: Clock;
  /** pulls an image (FROM, COPY --from) reporting progress lines */
  pull: (
    ref: string,
    platform: string | undefined,
    creds: Credentials | null,
    say: (line: string) => void,
  ) => Promise<ImageRecord>;
}

export interface BuildRequest {
  dockerfile: string;
  tags: string[];
  buildArgs: Record<string, string>;
  target: string;
  noCache: boolean;
  pull: boolean;
  labels: Record<string, string>;
  cacheFrom: string[];
  secrets: Record<string, Buffer>;
  platform: string;
  network: 'host' | 'none' | 'default';
  /** registry credentials for the images the build pulls */
  credentials: (ref: string) => Credentials | null;
  signal: AbortSignal;
}

export interface StepEvent {
  stage: string;
  /** 1-based over the steps of the stages built */
  index: number;
  total: number;
  text: string;
  cached: boolean;
  ms: number;
}

export interface BuildOutput {
  /** dockerd's legacy builder stream lines (`Step 2/5 : RUN ...`, ` ---> Using cache`, command output) */
  stream(text: string): void;
  /** a finished step, for progress displays */
  step(e: StepEvent): void;
}

/** What one build uses of the builder service: its cache and the locks of cache mounts. */
export interface BuildHost {
  readonly cache: BuildCache;
  /** Runs `fn` holding the lock of a cache mount id (sharing=locked). */
  locked<T>(id: string, fn: () => Promise<T>): Promise<T>;
}
