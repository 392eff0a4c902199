/**
 * The builder's types, shared by the service (builder.ts), one build's executor (build.ts) and
 * the steps (steps.ts, run-step.ts, copy-step.ts): the services it is given, a build request,
 * where its output goes. Kept apart so those modules import them downward, not from each other.
 */
import type { Duplex, Writable } from 'node:stream';
import { BerthError } from '../base/errors.js';
import type { Clock } from '../base/clock.js';
import type { Credentials } from '../distribution/client.js';
import type { Progress } from '../distribution/transfer.js';

/** a pull's progress message (`{"status": "Pulling fs layer", "id": ...}`), as /images/create streams it */
export type PullProgress = Parameters<Progress>[0];
import type { ImageRecord } from '../image/types.js';
import type { Db } from '../metadata/db.js';
import type { BuildRunner, Resources, RuntimeName } from '../runtime/types.js';
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
    progress: (m: PullProgress) => void,
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
  /**
   * networkmode=container:<id>: RUN steps join that container's network namespace; called at each
   * RUN for its path (throws when the container is gone or not running, as dockerd fails that RUN)
   */
  joinNetns?: () => string;
  /** extrahosts: `host:ip` entries added to /etc/hosts of RUN steps */
  extraHosts?: Array<{ host: string; ip: string }>;
  /** memory, cpu*, shmsize, ulimits: the limits of RUN steps, as dockerd's legacy builder applies them */
  limits?: StepLimits;
  /** rm (default true) / forcerm: what the stream says of intermediate containers (berth makes none) */
  remove?: boolean;
  forceRemove?: boolean;
  /** registry credentials for the images the build pulls */
  credentials: (ref: string) => Credentials | null;
  /** the client's SSH agents (a BuildKit session's moby.sshforward.v1.SSH), for RUN --mount=type=ssh */
  ssh?: SshAgents;
  signal: AbortSignal;
}

/**
 * SSH agents a client forwards (BuildKit's session/sshforward). The builder makes the socket a RUN
 * sees; each connection on it is handed to `forward`, which relays it to the client's agent `id`.
 */
export interface SshAgents {
  /** null when agent `id` is forwarded, else why not (BuildKit's words), asked before the RUN starts */
  check(id: string, signal: AbortSignal): Promise<string | null>;
  /** Relays one connection to agent `id` until either side ends it (or `signal` aborts). Never throws. */
  forward(id: string, conn: Duplex, signal: AbortSignal): void;
}

export interface StepLimits {
  resources: Resources;
  ulimits: Array<{ name: string; soft: number; hard: number }>;
  shmSize?: number;
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
  /** a stage's image id (`{"aux": {"ID": ...}}`), as dockerd reports at the end of every stage */
  aux?(id: string): void;
  /** a base image's pull progress, message as is (dockerd puts them in the build stream); without it, lines */
  progress?(m: PullProgress): void;
}

/** What one build uses of the builder service: its cache and the locks of cache mounts. */
export interface BuildHost {
  readonly cache: BuildCache;
  /** Runs `fn` holding the lock of a cache mount id (sharing=locked). */
  locked<T>(id: string, fn: () => Promise<T>): Promise<T>;
}

/** A RUN command that exited non-zero: dockerd's words, and the code its errorDetail carries. */
export class CommandFailed extends BerthError {
  constructor(
    what: string,
    readonly exitCode: number,
  ) {
    super('InvalidArgument', `The command '${what}' returned a non-zero code: ${exitCode}`);
  }
}

/** A Dockerfile that does not parse: the line and the reason, apart (dockerd words it differently). */
export class ParseFailed extends BerthError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
    /** dockerd's whole message where it is not "dockerfile parse error line N: <reason>" */
    readonly dockerd?: string,
  ) {
    super('InvalidArgument', `${file}:${line}: ${reason}`);
  }
}

/** A step that failed (not a RUN's exit code): the instruction, its line and the reason. */
export class StepFailed extends BerthError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly instruction: string,
    readonly reason: string,
    cause: unknown,
  ) {
    super('InvalidArgument', `${file}:${line}: ${reason}`, { cause });
  }
}

/**
 * How a failed build is reported. Docker clients get dockerd's words: a RUN's non-zero exit as
 * "The command '...' returned a non-zero code: N" with `code: N`, a parse error as
 * "dockerfile parse error line N: ...", a failed COPY/ADD as "COPY failed: ...", another step's
 * error without the line. berth's own CLI (`berth`) keeps the Dockerfile and line.
 */
export function buildErrorDetail(e: unknown, berth: boolean): { message: string; code?: number } {
  const chain: unknown[] = [];
  for (let c: unknown = e; c instanceof Error && chain.length < 8; c = c.cause) chain.push(c);
  const own = e instanceof Error ? e.message : String(e);
  const run = chain.find((c): c is CommandFailed => c instanceof CommandFailed);
  if (run) return { message: berth ? own : run.message, code: run.exitCode };
  if (berth) return { message: own };
  if (e instanceof ParseFailed) return { message: e.dockerd ?? `dockerfile parse error line ${e.line}: ${e.reason}` };
  if (e instanceof StepFailed)
    return { message: ['COPY', 'ADD'].includes(e.instruction) ? `${e.instruction} failed: ${e.reason}` : e.reason };
  return { message: own };
}
