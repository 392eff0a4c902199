/**
 * The builder service: unpacks a build's context, parses its Dockerfile, plans the stages the
 * target needs and runs them (build.ts's BuildRun), then registers and tags the image. Owns the
 * build cache, its prune, the scratch space a crash may leave, and the locks of cache mounts.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { basename, join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { invalidArgument } from '../base/errors.js';
import { shortId } from '../base/ids.js';
import { log } from '../base/log.js';
import { normalizeTagged } from '../image/reference.js';
import { systemClock } from '../base/clock.js';
import type { ImageRecord } from '../image/types.js';
import { resolveInRoot } from '../archive/container-fs.js';
import { parseDockerfile, stagesOf } from './parser.js';
import type { BuildCache } from './cache.js';
import { clearScratch, openBuildCache } from './start.js';
import { SourceRoot, receiveContext } from './context.js';
import { NOP, type State } from './steps.js';
import { BuildRun, copyOf } from './build.js';
import { withChainView } from './view.js';
import type { BuildHost, BuilderDeps, BuildOutput, BuildRequest } from './types.js';

export type {
  BuilderDeps,
  BuilderImages,
  BuildHost,
  BuildOutput,
  BuildRequest,
  StepEvent,
  StepLimits,
} from './types.js';
export { buildErrorDetail, CommandFailed, ParseFailed } from './types.js';

export class Builder implements BuildHost {
  readonly cache: BuildCache;
  /** cache mounts with sharing=locked: one build step at a time per id */
  private readonly locks = new Map<string, Promise<void>>();

  /**
   * `cache`: the step cache berthd opened at start (./start.ts: its layers already retained);
   * without it the builder opens its own and retains its layers.
   */
  constructor(
    private readonly d: BuilderDeps,
    cache?: BuildCache,
  ) {
    this.cache = cache ?? openBuildCache(d.db, d.images, d.clock ?? systemClock);
  }

  /** Clears what a build cut short by a crash left: mounts and files in scratch, step snapshots. */
  init(): Promise<void> {
    return clearScratch(this.d);
  }

  /** Unpacks the context tar and builds. Everything temporary is removed, whatever happens. */
  async buildFromTar(context: Readable, req: BuildRequest, out: BuildOutput): Promise<ImageRecord> {
    const dir = join(this.d.scratch, `ctx-${randomBytes(8).toString('hex')}`);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      const t0 = performance.now();
      await receiveContext(context, dir);
      log.debug('build context received', { ms: +(performance.now() - t0).toFixed(1) });
      return await this.d.images.withLease('build', () => this.build(dir, req, out));
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Removes the build cache and the layers only it kept; with `before`, only the entries unused
   * since then (the cache mounts stay).
   */
  async prune(before?: Date): Promise<{ entries: number; freed: number }> {
    const entries = this.cache.clear(before);
    const freed = await this.d.images.collectLayers();
    if (!before) await fsp.rm(join(this.d.root, 'cache-mounts'), { recursive: true, force: true });
    return { entries, freed };
  }

  async build(contextDir: string, req: BuildRequest, out: BuildOutput): Promise<ImageRecord> {
    const file = req.dockerfile || 'Dockerfile';
    const rel = posix.normalize(file);
    if (rel === '..' || rel.startsWith('../'))
      throw invalidArgument(`forbidden path outside the build context: ${file}`); // dockerd's words
    const dfPath = await resolveInRoot(contextDir, file);
    const text = await fsp.readFile(dfPath, 'utf8').catch(() => {
      throw invalidArgument(`Cannot locate specified Dockerfile: ${file}`);
    });
    const name = basename(file);
    const df = parseDockerfile(text, name);
    const { globalArgs, stages } = stagesOf(df, name);
    for (const t of req.tags) normalizeTagged(t); // a bad tag fails before any step runs
    const target = req.target ? stages.find((s) => s.name === req.target.toLowerCase()) : stages[stages.length - 1];
    if (!target) throw invalidArgument(`failed to reach build target ${req.target} in Dockerfile`);
    const run = new BuildRun(
      this,
      this.d,
      req,
      out,
      df.escape,
      name,
      await SourceRoot.context(contextDir, file),
      stages,
    );
    const globals = run.globalScope(globalArgs);
    run.plan(target, globals);
    let state: State;
    try {
      state = await run.stage(target.index);
    } catch (e) {
      // a failing stage stopped the others: nothing keeps running (or reading the context) after the answer
      await run.settled();
      run.out.flushAll(run.failedStage);
      throw run.firstError ?? e;
    }
    run.warnUnused();
    const img = await this.d.images.register(Buffer.from(JSON.stringify(state.config)), {});
    out.stream(`Successfully built ${shortId(img.id)}\n`);
    for (const t of req.tags) {
      this.d.images.tag(img.id, t);
      out.stream(
        `Successfully tagged ${t.includes(':') && t.lastIndexOf(':') > t.lastIndexOf('/') ? t : `${t}:latest`}\n`,
      );
    }
    return this.d.images.get(img.id);
  }

  /**
   * `fn` on a read-only view of image `img`'s root filesystem (BuildKit's local and tar exporters
   * read the result through it); the view is gone when `fn` ends.
   */
  withRootfs<T>(img: ImageRecord, fn: (dir: string) => Promise<T>): Promise<T> {
    return withChainView(this.d, img.topChainId, fn);
  }

  /** Runs `fn` holding the lock of a cache mount id (sharing=locked). */
  async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chained = prev.then(() => mine);
    this.locks.set(id, chained);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(id) === chained) this.locks.delete(id);
    }
  }
}
