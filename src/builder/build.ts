/**
 * The build executor: a Dockerfile's stages as a DAG (a stage starts at once and waits only for
 * the stages it reads from, so independent stages run concurrently; `--target` builds only what
 * the target needs), each instruction a step with a cache key chained from the previous one.
 * Metadata steps change the config (history entry with `empty_layer`), RUN runs a container
 * (run.ts), COPY/ADD write their layer directly (copy.ts). Only the final image is registered;
 * intermediate states live in the build cache.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import { shortId } from '../base/ids.js';
import { normalizeTagged } from '../image/reference.js';
import { log } from '../base/log.js';
import type { Db } from '../metadata/db.js';
import type { Credentials } from '../distribution/client.js';
import type { ImageRecord } from '../image/types.js';
import type { Mounter } from '../snapshot/types.js';
import type { OverlaySnapshotter } from '../snapshot/overlay.js';
import type { Runtime, RuntimeName } from '../runtime/types.js';
import { DEFAULT_PATH } from '../runtime/spec.js';
import { resolveUser } from '../runtime/user.js';
import { resolveInRoot } from '../archive/container-fs.js';
import type { ImageConfig, ImageRuntimeConfig } from '../spec/image.js';
import { expand, expandWord, parseDockerfile, stagesOf, type Instruction, type Stage } from './parser.js';
import { BuildCache, stepKey } from './cache.js';
import { SourceRoot, receiveContext } from './context.js';
import { describeInputs, planCopy, planMkdir, writeCopyLayer, type CopyInput, type CopyPlan, type Owner } from './copy.js';
import { cacheMountDir, parseMountFlag, runStep, type RunMount } from './run.js';
import { configStep } from './config-steps.js';

/** What the builder needs of the image store. */
export interface BuilderImages {
  get(ref: string): ImageRecord;
  register(configBytes: Buffer, names: { tag?: string }): Promise<ImageRecord>;
  tag(ref: string, target: string): void;
  hasLayer(diffId: string): boolean;
  writeLayer(fill: (out: NodeJS.WritableStream & import('node:stream').Writable) => Promise<void>): Promise<{ diffId: string; size: number }>;
  unpack(diffIds: readonly string[]): Promise<string | null>;
  retain(chains: () => string[][]): void;
  collectLayers(): Promise<number>;
}

export interface BuilderDeps {
  /** `<root>/builder`: cache mounts */
  root: string;
  /** scratch space: contexts, bundles, secrets */
  scratch: string;
  db: Db;
  images: BuilderImages;
  snapshots: OverlaySnapshotter;
  mounter: Mounter;
  runtime: Runtime;
  defaultRuntime: RuntimeName;
  /** pulls an image (FROM, COPY --from) reporting progress lines */
  pull: (ref: string, platform: string | undefined, creds: Credentials | null, say: (line: string) => void) => Promise<ImageRecord>;
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

/** A step's result: the image config so far and the key chain. */
interface State {
  config: ImageConfig;
  key: string;
  chainId: string | null;
  /** whether the step that made this state was a cache hit */
  cached?: boolean;
}

const PREDEFINED_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];
const NOP = '/bin/sh -c #(nop) ';

const configId = (c: ImageConfig) => `sha256:${createHash('sha256').update(JSON.stringify(c)).digest('hex')}`;
const copyOf = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

export class Builder {
  readonly cache: BuildCache;
  /** cache mounts with sharing=locked: one build step at a time per id */
  private readonly locks = new Map<string, Promise<void>>();

  constructor(private readonly d: BuilderDeps) {
    this.cache = new BuildCache(d.db);
    d.images.retain(() => this.cache.chains());
  }

  /** Clears what a build cut short by a crash left: mounts and files in scratch, step snapshots. */
  async init(): Promise<void> {
    await fsp.mkdir(this.d.root, { recursive: true });
    const mounts = (await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => '')).split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(`${this.d.scratch}/`));
    for (const m of mounts.sort((a, b) => b.length - a.length)) await this.d.mounter.unmount(m).catch(() => undefined);
    await fsp.rm(this.d.scratch, { recursive: true, force: true });
    await fsp.mkdir(this.d.scratch, { recursive: true, mode: 0o700 });
    for (const key of this.d.snapshots.activeKeys('build-')) await this.d.snapshots.remove(key);
  }

  /** Unpacks the context tar and builds. Everything temporary is removed, whatever happens. */
  async buildFromTar(context: Readable, req: BuildRequest, out: BuildOutput): Promise<ImageRecord> {
    const dir = join(this.d.scratch, `ctx-${randomBytes(8).toString('hex')}`);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      const t0 = performance.now();
      await receiveContext(context, dir);
      log.debug('build context received', { ms: +(performance.now() - t0).toFixed(1) });
      return await this.build(dir, req, out);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /** Removes the build cache and the layers only it kept. */
  async prune(): Promise<{ entries: number; freed: number }> {
    const entries = this.cache.clear();
    const freed = await this.d.images.collectLayers();
    await fsp.rm(join(this.d.root, 'cache-mounts'), { recursive: true, force: true });
    return { entries, freed };
  }

  async build(contextDir: string, req: BuildRequest, out: BuildOutput): Promise<ImageRecord> {
    const file = req.dockerfile || 'Dockerfile';
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
    const run = new BuildRun(this, this.d, req, out, df.escape, name, await SourceRoot.context(contextDir), stages);
    const globals = run.globalScope(globalArgs);
    run.plan(target, globals);
    let state: State;
    try {
      state = await run.stage(target.index);
    } catch (e) {
      // a failing stage stopped the others: nothing keeps running (or reading the context) after the answer
      await run.settled();
      throw run.firstError ?? e;
    }
    const labels = Object.entries(req.labels);
    if (labels.length) {
      const cfg = copyOf(state.config.config ?? {});
      cfg.Labels = { ...(cfg.Labels ?? {}), ...req.labels };
      state = await run.commit(state, [`LABEL ${JSON.stringify(req.labels)}`], `${NOP} LABEL ${labels.map(([k, v]) => `${k}=${v}`).join(' ')}`, cfg, null);
    }
    run.warnUnused();
    const img = await this.d.images.register(Buffer.from(JSON.stringify(state.config)), {});
    out.stream(`Successfully built ${shortId(img.id)}\n`);
    for (const t of req.tags) {
      this.d.images.tag(img.id, t);
      out.stream(`Successfully tagged ${t.includes(':') && t.lastIndexOf(':') > t.lastIndexOf('/') ? t : `${t}:latest`}\n`);
    }
    return this.d.images.get(img.id);
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

/** One build: its stages, their results, the step counter and the build-arg bookkeeping. */
class BuildRun {
  private readonly results = new Map<number, Promise<State>>();
  private readonly needed = new Set<number>();
  private readonly consumed = new Set<string>();
  private globals = new Map<string, string>();
  private total = 0;
  private readonly numbers = new Map<Instruction, number>();
  private readonly cacheFrom: ImageConfig[] = [];
  private readonly epoch: number | null;
  /** aborted when a stage fails, so that the stages still running stop */
  private readonly stop = new AbortController();
  /** the first stage failure that was not an abort: what the build reports */
  firstError: unknown = null;
  private readonly req: BuildRequest;

  constructor(
    private readonly builder: Builder,
    private readonly d: BuilderDeps,
    request: BuildRequest,
    private readonly out: BuildOutput,
    private readonly escape: string,
    private readonly file: string,
    private readonly context: SourceRoot,
    private readonly stages: Stage[],
  ) {
    const req = (this.req = { ...request, signal: AbortSignal.any([request.signal, this.stop.signal]) });
    const e = req.buildArgs['SOURCE_DATE_EPOCH'];
    this.epoch = e !== undefined && /^\d+$/.test(e) ? Number(e) : null;
    if (e !== undefined) this.consumed.add('SOURCE_DATE_EPOCH');
    for (const ref of req.cacheFrom) {
      try {
        this.cacheFrom.push(d.images.get(ref).config);
      } catch {
        out.stream(`[Warning] cache-from image ${ref} is not available locally\n`);
      }
    }
  }

  private fail(ins: Instruction, e: unknown): never {
    const msg = errorMessage(e);
    if (/^[\w./-]+:\d+: /.test(msg)) throw e;
    throw invalidArgument(`${this.file}:${ins.line}: ${msg}`);
  }

  /** The ARGs before the first FROM, with --build-arg values and the predefined platform ARGs. */
  globalScope(args: Instruction[]): Map<string, string> {
    const g = new Map<string, string>([['TARGETPLATFORM', this.req.platform], ['TARGETOS', 'linux'], ['TARGETARCH', 'amd64'], ['BUILDPLATFORM', 'linux/amd64'], ['BUILDOS', 'linux'], ['BUILDARCH', 'amd64']]);
    for (const ins of args) {
      for (const [k, v] of this.argPairs(ins, g)) if (v === null) g.delete(k); else g.set(k, v);
    }
    this.globals = g;
    return g;
  }

  /** ARG words -> (name, value): --build-arg wins, then the default, then the global value. */
  private argPairs(ins: Instruction, vars: ReadonlyMap<string, string>, fromGlobal = false): Array<[string, string | null]> {
    const out: Array<[string, string | null]> = [];
    for (const w of ins.args) {
      const eq = w.indexOf('=');
      const name = eq < 0 ? w : w.slice(0, eq);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) this.fail(ins, `invalid ARG name: ${name}`);
      this.consumed.add(name);
      if (name in this.req.buildArgs) out.push([name, this.req.buildArgs[name]!]);
      else if (eq >= 0) out.push([name, this.word(w.slice(eq + 1), vars)]);
      else if (fromGlobal && this.globals.has(name)) out.push([name, this.globals.get(name)!]);
      else out.push([name, null]); // declared without a value: unset, as in Docker
    }
    return out;
  }

  private stageRef(ref: string, before: number): Stage | undefined {
    const lower = ref.toLowerCase();
    const byName = this.stages.find((s) => s.name === lower && s.index < before);
    if (byName) return byName;
    if (/^\d+$/.test(ref)) {
      const s = this.stages[Number(ref)];
      if (!s || s.index >= before) throw invalidArgument(`invalid stage index ${ref}: only earlier stages can be referenced`);
      return s;
    }
    return undefined;
  }

  /** Marks the stages the target needs (FROM, COPY --from, RUN --mount from=) and numbers their steps. */
  plan(target: Stage, globals: ReadonlyMap<string, string>): void {
    const visit = (s: Stage) => {
      if (this.needed.has(s.index)) return;
      this.needed.add(s.index);
      const base = this.stageRef(expand(s.from.args[0]!, globals, this.escape), s.index);
      if (base) visit(base);
      for (const ins of s.instructions) {
        const froms = [...(ins.flags['from'] ?? []), ...(ins.flags['mount'] ?? []).map((m) => /(?:^|,)from=([^,]+)/.exec(m)?.[1] ?? '').filter(Boolean)];
        for (const f of froms) {
          const dep = this.stageRef(expand(f, globals, this.escape), s.index);
          if (dep) visit(dep);
        }
      }
    };
    visit(target);
    for (const s of this.stages) {
      if (!this.needed.has(s.index)) continue;
      for (const ins of [s.from, ...s.instructions]) this.numbers.set(ins, ++this.total);
    }
    // independent stages start now; each waits only for what it reads; the first failure stops all
    for (const i of this.needed)
      this.stage(i).catch((e: unknown) => {
        if (this.req.signal.aborted) return;
        this.firstError = e;
        this.stop.abort(e);
      });
  }

  /** Resolves when every started stage has finished, failed or been aborted. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.results.values()]);
  }

  stage(index: number): Promise<State> {
    let p = this.results.get(index);
    if (!p) {
      p = this.runStage(this.stages[index]!);
      this.results.set(index, p);
    }
    return p;
  }

  private header(ins: Instruction): void {
    this.out.stream(`Step ${this.numbers.get(ins) ?? '?'}/${this.total} : ${ins.original}\n`);
  }

  private stageName(s: Stage): string {
    return s.name ?? `stage-${s.index}`;
  }

  private async runStage(stage: Stage): Promise<State> {
    const args = new Map<string, string>();
    const t0 = performance.now();
    this.header(stage.from);
    let state: State;
    let onbuild: string[] = [];
    try {
      state = await this.from(stage);
      onbuild = state.config.config?.OnBuild ?? [];
      if (onbuild.length) {
        const cfg = copyOf(state.config.config ?? {});
        cfg.OnBuild = null;
        state = { ...state, config: { ...state.config, config: cfg } };
      }
    } catch (e) {
      this.fail(stage.from, e);
    }
    this.out.step({ stage: this.stageName(stage), index: this.numbers.get(stage.from)!, total: this.total, text: stage.from.original, cached: true, ms: performance.now() - t0 });
    const ctx: StageCtx = { stage, args, cmdSet: false };
    for (const trigger of onbuild) {
      const ins = parseDockerfile(`FROM scratch\n${trigger}`, this.file).instructions[1]!;
      this.out.stream(`# Executing ONBUILD trigger: ${trigger}\n`);
      state = await this.instruction(ctx, state, { ...ins, line: stage.from.line });
    }
    for (const ins of stage.instructions) {
      this.req.signal.throwIfAborted();
      this.header(ins);
      const t = performance.now();
      state = await this.instruction(ctx, state, ins);
      this.out.step({ stage: this.stageName(stage), index: this.numbers.get(ins)!, total: this.total, text: ins.original, cached: state.cached ?? false, ms: performance.now() - t });
    }
    return state;
  }

  private async from(stage: Stage): Promise<State> {
    const ref = expand(stage.from.args[0]!, this.globals, this.escape);
    const dep = this.stageRef(ref, stage.index);
    if (dep) {
      const s = await this.stage(dep.index);
      this.out.stream(` ---> ${shortId(configId(s.config))}\n`);
      return s;
    }
    if (ref.toLowerCase() === 'scratch') {
      const config: ImageConfig = { architecture: 'amd64', os: 'linux', config: { Env: [DEFAULT_PATH] }, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
      this.out.stream(' ---> scratch\n');
      return { config, key: stepKey('scratch'), chainId: null };
    }
    const platform = stage.from.flags['platform']?.[0];
    const img = await this.image(ref, platform ? expand(platform, this.globals, this.escape) : undefined, this.req.pull);
    this.out.stream(` ---> ${shortId(img.id)}\n`);
    return { config: copyOf(img.config), key: stepKey(img.id), chainId: img.topChainId };
  }

  private readonly pulled = new Map<string, Promise<ImageRecord>>();

  /** A base image: local, or pulled (once per build) when missing or with --pull. */
  private async image(ref: string, platform: string | undefined, forcePull: boolean): Promise<ImageRecord> {
    if (!forcePull) {
      try {
        const img = this.d.images.get(ref);
        await this.d.images.unpack(img.config.rootfs.diff_ids);
        return img;
      } catch (e) {
        if (!isBerthError(e, 'NotFound')) throw e;
      }
    }
    let p = this.pulled.get(ref);
    if (!p) {
      p = this.d.pull(ref, platform, this.req.credentials(ref), (line) => this.out.stream(`${line}\n`));
      this.pulled.set(ref, p);
    }
    return p;
  }

  /** Variables for expansion: ARGs in scope, then ENV (which wins). */
  private vars(ctx: StageCtx, state: State): Map<string, string> {
    const v = new Map(ctx.args);
    for (const e of state.config.config?.Env ?? []) {
      const i = e.indexOf('=');
      if (i > 0) v.set(e.slice(0, i), e.slice(i + 1));
    }
    return v;
  }

  private word(w: string, vars: ReadonlyMap<string, string>): string {
    return expandWord(w, vars, this.escape);
  }

  /**
   * A step through the cache: `parts` make the key (with the parent's); a hit reuses the cached
   * config, a `--cache-from` image whose history continues ours with `createdBy` lends its layer,
   * else `layer()` makes the layer (null: none) and the result is cached.
   */
  async commit(state: State, parts: string[], createdBy: string, runtimeConfig: ImageRuntimeConfig, layer: (() => Promise<string | null>) | null): Promise<State> {
    const key = stepKey(state.key, ...parts);
    if (!this.req.noCache) {
      const hit = this.builder.cache.get(key, (d) => this.d.images.hasLayer(d));
      if (hit) return this.reuse(key, hit);
      const lent = this.fromCacheImages(state, createdBy, runtimeConfig);
      if (lent) {
        this.builder.cache.put(key, lent);
        return this.reuse(key, lent);
      }
    }
    const diffId = layer ? await layer() : null;
    const created = this.epoch !== null ? new Date(this.epoch * 1000).toISOString() : new Date().toISOString();
    const config: ImageConfig = {
      ...state.config,
      created,
      config: runtimeConfig,
      rootfs: { type: 'layers', diff_ids: [...state.config.rootfs.diff_ids, ...(diffId ? [diffId] : [])] },
      history: [...(state.config.history ?? []), { created, created_by: createdBy, ...(diffId ? {} : { empty_layer: true }) }],
    };
    this.builder.cache.put(key, config);
    const chainId = diffId ? await this.d.images.unpack(config.rootfs.diff_ids) : state.chainId;
    this.out.stream(` ---> ${shortId(configId(config))}\n`);
    return { config, key, chainId };
  }

  private async reuse(key: string, config: ImageConfig): Promise<State> {
    this.out.stream(` ---> Using cache\n ---> ${shortId(configId(config))}\n`);
    return { config, key, chainId: await this.d.images.unpack(config.rootfs.diff_ids), cached: true };
  }

  /** dockerd's --cache-from rule: an image whose history and layers start with ours and whose next entry is this step. */
  private fromCacheImages(state: State, createdBy: string, runtimeConfig: ImageRuntimeConfig): ImageConfig | null {
    const h = state.config.history ?? [];
    const diffs = state.config.rootfs.diff_ids;
    for (const src of this.cacheFrom) {
      const H = src.history ?? [];
      const next = H[h.length];
      if (!next || next.created_by !== createdBy) continue;
      if (!h.every((e, i) => e.created_by === H[i]!.created_by && !!e.empty_layer === !!H[i]!.empty_layer)) continue;
      if (!diffs.every((dd, i) => src.rootfs.diff_ids[i] === dd)) continue;
      const diff = next.empty_layer ? null : src.rootfs.diff_ids[diffs.length];
      if (!next.empty_layer && (!diff || !this.d.images.hasLayer(diff))) continue;
      return { ...state.config, created: next.created ?? new Date().toISOString(), config: runtimeConfig, rootfs: { type: 'layers', diff_ids: [...diffs, ...(diff ? [diff] : [])] }, history: [...h, next] };
    }
    return null;
  }

  private async instruction(ctx: StageCtx, state: State, ins: Instruction): Promise<State> {
    try {
      return await this.dispatch(ctx, state, ins);
    } catch (e) {
      if (this.req.signal.aborted) throw e;
      this.fail(ins, e);
    }
  }

  private async dispatch(ctx: StageCtx, state: State, ins: Instruction): Promise<State> {
    const vars = this.vars(ctx, state);
    const cfg = copyOf(state.config.config ?? {});
    const meta = (text: string, nop = `${NOP} `) => this.commit(state, [text], `${nop}${text}`, cfg, null);
    const m = configStep(ins, cfg, vars, this.escape, ctx);
    if (m) {
      const next = await meta(m.text);
      return m.author === undefined ? next : { ...next, config: { ...next.config, author: m.author } };
    }
    switch (ins.name) {
      case 'ARG': {
        for (const [k, v] of this.argPairs(ins, vars, true)) if (v === null) ctx.args.delete(k); else ctx.args.set(k, v);
        return meta(`ARG ${ins.args.join(' ')}`);
      }
      case 'WORKDIR':
        return this.workdir(state, cfg, this.word(ins.args[0]!, vars));
      case 'RUN':
        return this.run(ctx, state, cfg, ins, vars);
      case 'COPY':
      case 'ADD':
        return this.copy(state, cfg, ins, vars);
      case 'FROM':
        throw invalidArgument('FROM inside a stage');
      default:
        throw invalidArgument(`${ins.name} cannot be built`); // configStep took the others
    }
  }

  /** Mounts a read-only view of a chain for `fn` (a directory when the chain has one layer). */
  private async withView<T>(chainId: string | null, fn: (dir: string) => Promise<T>): Promise<T> {
    const v = this.d.snapshots.view(chainId);
    if ('dir' in v) return fn(v.dir);
    const dir = join(this.d.scratch, `view-${randomBytes(8).toString('hex')}`);
    await fsp.mkdir(dir, { recursive: true });
    await this.d.mounter.mountAll([v.mount], dir);
    try {
      return await fn(dir);
    } finally {
      await this.d.mounter.unmount(dir).catch(() => undefined);
      await fsp.rmdir(dir).catch(() => undefined);
    }
  }

  private async layerOf(plan: CopyPlan): Promise<string> {
    const { diffId } = await this.d.images.writeLayer((out) => writeCopyLayer(plan, out));
    return diffId;
  }

  private async workdir(state: State, cfg: ImageRuntimeConfig, dir: string): Promise<State> {
    const path = posix.resolve(cfg.WorkingDir || '/', dir);
    cfg.WorkingDir = path;
    // whether the directory exists follows from the parent's key: a hit needs no look at the filesystem
    return this.commit(state, [`WORKDIR ${path}`], `${NOP}WORKDIR ${path}`, cfg, () =>
      this.withView(state.chainId, async (view) => {
        const owner = cfg.User ? await resolveUser(view, cfg.User).catch(() => ({ uid: 0, gid: 0 })) : { uid: 0, gid: 0 };
        const plan = await planMkdir(view, path, { uid: owner.uid, gid: owner.gid }, this.epoch);
        return plan ? this.layerOf(plan) : null;
      }),
    );
  }

  /** A stage's or an image's filesystem for COPY --from / RUN --mount from=. */
  private async fromChain(ref: string, before: number): Promise<{ chainId: string | null; key: string }> {
    const dep = this.stageRef(ref, before);
    if (dep) {
      const s = await this.stage(dep.index);
      return { chainId: s.chainId, key: s.key };
    }
    const img = await this.image(ref, undefined, false).catch((e: unknown) => {
      throw invalidArgument(`--from=${ref}: no build stage and no image of that name (${errorMessage(e)})`);
    });
    return { chainId: img.topChainId, key: img.id };
  }

  private async copy(state: State, cfg: ImageRuntimeConfig, ins: Instruction, vars: Map<string, string>): Promise<State> {
    const isAdd = ins.name === 'ADD';
    const allowed = new Set(['from', 'chown', 'chmod', 'link', ...(isAdd ? ['checksum', 'keep-git-dir'] : ['parents'])]);
    for (const f of Object.keys(ins.flags)) if (!allowed.has(f)) throw invalidArgument(`unknown flag: --${f}`);
    const words = ins.json ? ins.args.map((a) => expand(a, vars, this.escape)) : ins.args.map((a) => this.word(a, vars));
    const destWord = words.pop()!;
    const dest = posix.isAbsolute(destWord) ? destWord : `${posix.resolve(cfg.WorkingDir || '/', destWord)}${destWord.endsWith('/') ? '/' : ''}`;
    const fromRef = ins.flags['from']?.[0];
    const chmodText = ins.flags['chmod']?.[0];
    if (chmodText !== undefined && !/^[0-7]{3,4}$/.test(chmodText)) throw invalidArgument(`invalid chmod parameter: ${chmodText}`);
    const chmod = chmodText !== undefined ? parseInt(chmodText, 8) : null;
    const from = fromRef !== undefined ? await this.fromChain(this.word(fromRef, vars), this.currentStage(ins)) : null;
    const heredocs = new Map(ins.heredocs.map((h) => [h.name, h]));
    const cleanups: Array<() => Promise<void>> = [];
    const inputsFrom = async (root: SourceRoot): Promise<CopyInput[]> => {
      const inputs: CopyInput[] = [];
      for (const w of words) {
        const hd = /^<<-?["']?([A-Za-z_][A-Za-z0-9_]*)["']?$/.exec(w);
        const doc = hd ? heredocs.get(hd[1]!) : undefined;
        if (doc) inputs.push({ kind: 'inline', name: doc.name, content: Buffer.from(doc.expand ? expand(doc.content, vars, this.escape) : doc.content) });
        else if (isAdd && /^https?:\/\//.test(w)) inputs.push(await this.download(w, cleanups));
        else for (const source of await root.resolve(w)) inputs.push({ kind: 'source', source });
      }
      return inputs;
    };
    /** The layer, on a miss: the parent's filesystem decides existing directories and --chown names. */
    const layer = (inputs: CopyInput[]) => () =>
      this.withView(state.chainId, async (view) => {
        const chownText = ins.flags['chown']?.[0];
        let owner: Owner | null = null;
        if (chownText) {
          const u = await resolveUser(view, chownText.includes(':') ? chownText : `${chownText}:${chownText}`).catch(async () => resolveUser(view, chownText));
          owner = { uid: u.uid, gid: u.gid };
        }
        return this.layerOf(await planCopy({ inputs, dest, view, chown: owner, chmod, extract: isAdd, epoch: this.epoch }));
      });
    const flags = JSON.stringify({ chown: ins.flags['chown'] ?? null, chmod });
    try {
      if (!from) {
        // context sources: the key has their contents
        const inputs = await inputsFrom(this.context);
        const { digest, summary } = await describeInputs(inputs);
        return await this.commit(state, [ins.name, flags, dest, digest], `${NOP}${ins.name} ${summary} in ${dest} `, cfg, layer(inputs));
      }
      // a stage's or an image's files follow from its key: no need to read them for a hit
      const digest = stepKey(from.key, ...words);
      return await this.commit(state, [ins.name, flags, dest, digest], `${NOP}${ins.name} from:${digest.slice(7)} in ${dest} `, cfg, () =>
        this.withView(from.chainId, async (dir) => layer(await inputsFrom(new SourceRoot(dir, null, false)))()),
      );
    } finally {
      for (const c of cleanups) await c();
    }
  }

  private currentStage(ins: Instruction): number {
    return this.stages.find((s) => s.instructions.includes(ins))?.index ?? this.stages.length;
  }

  /** ADD <url>: fetched into scratch space; the name is the URL's last path element. */
  private async download(url: string, cleanups: Array<() => Promise<void>>): Promise<CopyInput> {
    const res = await fetch(url, { signal: this.req.signal }).catch((e: unknown) => {
      throw invalidArgument(`ADD ${url}: ${errorMessage(e)}`);
    });
    if (!res.ok || !res.body) throw invalidArgument(`ADD ${url}: HTTP ${res.status}`);
    const file = join(this.d.scratch, `dl-${randomBytes(8).toString('hex')}`);
    cleanups.push(() => fsp.rm(file, { force: true }));
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(file));
    const lm = res.headers.get('last-modified');
    const name = basename(new URL(url).pathname) || 'index.html';
    return { kind: 'file', name, abs: file, mtime: lm ? new Date(lm) : new Date(0), mode: 0o600 };
  }

  private async run(ctx: StageCtx, state: State, cfg: ImageRuntimeConfig, ins: Instruction, vars: Map<string, string>): Promise<State> {
    for (const f of Object.keys(ins.flags)) if (!['mount', 'network', 'security'].includes(f)) throw invalidArgument(`unknown flag: --${f}`);
    if (ins.flags['security']?.some((s) => s !== 'sandbox')) throw invalidArgument('RUN --security=insecure is not allowed: it needs the security.insecure entitlement, which berth does not grant');
    const network = ins.flags['network']?.[0] ?? this.req.network;
    if (!['default', 'host', 'none'].includes(network)) throw invalidArgument(`unsupported RUN --network=${network}`);
    const shell = cfg.Shell ?? ['/bin/sh', '-c'];
    let args: string[];
    const onlyHeredoc = ins.heredocs.length === 1 && /^<<-?["']?\w+["']?$/.test(ins.raw.trim());
    if (ins.json) args = ins.args;
    else if (onlyHeredoc) args = [...shell, ins.heredocs[0]!.content];
    else args = [...shell, [ins.raw, ...ins.heredocs.map((h) => `${h.content}${h.name}`)].join('\n')];
    // ARGs are in the command's environment (ENV wins), not in the image
    const envNames = new Set((cfg.Env ?? []).map((e) => e.slice(0, e.indexOf('='))));
    const argEnv = [...ctx.args].filter(([k]) => !envNames.has(k)).map(([k, v]) => `${k}=${v}`);
    for (const p of PREDEFINED_ARGS) if (p in this.req.buildArgs && !ctx.args.has(p)) argEnv.push(`${p}=${this.req.buildArgs[p]}`);
    argEnv.sort();
    const specs = (ins.flags['mount'] ?? []).map((m) => parseMountFlag(this.word(m, vars)));
    const what = ins.json ? ins.args.join(' ') : `${shell.join(' ')} ${ins.raw}`;
    const createdBy = argEnv.length ? `|${argEnv.length} ${argEnv.join(' ')} ${what}` : what;
    const mountKeys: string[] = [];
    for (const m of specs) {
      const from = m['from'] ? await this.fromChain(m['from'], this.currentStage(ins)) : null;
      mountKeys.push(JSON.stringify({ ...m, from: from?.key ?? null }));
    }
    const parts = ['RUN', JSON.stringify(args), JSON.stringify(argEnv), JSON.stringify(mountKeys), network === 'none' ? 'none' : ''];
    return this.commit(state, parts, createdBy, cfg, () => this.execRun(state, cfg, ins, specs, args, [...(cfg.Env ?? []), ...argEnv], network === 'none' ? 'none' : 'host', what));
  }

  private async execRun(state: State, cfg: ImageRuntimeConfig, ins: Instruction, specs: Array<Record<string, string>>, args: string[], env: string[], network: 'host' | 'none', what: string): Promise<string | null> {
    const mounts: RunMount[] = [];
    const cleanups: Array<() => Promise<void>> = [];
    const locks: string[] = [];
    try {
      for (const m of specs) {
        const target = m['target']!;
        if (m['type'] === 'cache') {
          if (m['sharing'] === 'locked' || m['sharing'] === 'private') locks.push(m['id'] || target);
          mounts.push({ type: 'bind', target, source: await cacheMountDir(this.d.root, m), readonly: m['readonly'] === 'true' });
        } else if (m['type'] === 'secret') {
          const id = m['id'] || basename(target);
          const data = this.req.secrets[id];
          if (!data) {
            if (m['required'] === 'true') throw invalidArgument(`secret ${id} not found`);
            continue;
          }
          mounts.push({ type: 'secret', target, data, mode: m['mode'] ? parseInt(m['mode'], 8) : 0o400, uid: Number(m['uid'] ?? 0), gid: Number(m['gid'] ?? 0) });
        } else if (m['type'] === 'tmpfs') {
          mounts.push({ type: 'tmpfs', target, ...(m['size'] ? { size: m['size'] } : {}) });
        } else if (m['type'] === 'ssh') {
          throw invalidArgument('RUN --mount=type=ssh is not supported: berth has no SSH agent forwarding');
        } else {
          mounts.push({ type: 'bind', target, source: await this.bindSource(m, ins, cleanups), readonly: m['readwrite'] !== 'true' });
        }
      }
      const run = () =>
        runStep(
          { snapshots: this.d.snapshots, mounter: this.d.mounter, runtime: this.d.runtime, writeLayer: (f) => this.d.images.writeLayer(f), scratch: this.d.scratch },
          {
            chainId: state.chainId, args, env, cwd: cfg.WorkingDir || '/', user: cfg.User ?? '', mounts, network, runtime: this.d.defaultRuntime, epoch: this.epoch, signal: this.req.signal,
            output: (_s, chunk) => this.out.stream(chunk.toString()),
          },
          what,
        );
      this.out.stream(` ---> Running in ${randomBytes(6).toString('hex')}\n`);
      const withLocks = locks.reduce<() => Promise<{ diffId: string } | null>>((f, id) => () => this.builder.locked(id, f), run);
      const layer = await withLocks();
      return layer?.diffId ?? null;
    } finally {
      for (const c of cleanups.reverse()) await c();
    }
  }

  /** RUN --mount=type=bind: a path of the context or of a stage/image, read only unless rw (then a private copy). */
  private async bindSource(m: Record<string, string>, ins: Instruction, cleanups: Array<() => Promise<void>>): Promise<string> {
    const src = m['source'] ?? '/';
    let root: string;
    if (m['from']) {
      const from = await this.fromChain(m['from'], this.currentStage(ins));
      const v = this.d.snapshots.view(from.chainId);
      if ('dir' in v) root = v.dir;
      else {
        root = join(this.d.scratch, `view-${randomBytes(8).toString('hex')}`);
        await fsp.mkdir(root, { recursive: true });
        await this.d.mounter.mountAll([v.mount], root);
        const dir = root;
        cleanups.push(async () => {
          await this.d.mounter.unmount(dir).catch(() => undefined);
          await fsp.rmdir(dir).catch(() => undefined);
        });
      }
    } else {
      root = this.context.dir;
      this.context.clean(src);
    }
    const abs = await resolveInRoot(root, src);
    await fsp.lstat(abs).catch(() => {
      throw notFound(`RUN --mount: ${src} not found${m['from'] ? ` in ${m['from']}` : ' in the build context'}`);
    });
    if (m['readwrite'] !== 'true') return abs;
    const copy = join(this.d.scratch, `rw-${randomBytes(8).toString('hex')}`);
    await fsp.cp(abs, copy, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    cleanups.push(() => fsp.rm(copy, { recursive: true, force: true }));
    return copy;
  }

  warnUnused(): void {
    const unused = Object.keys(this.req.buildArgs).filter((k) => !this.consumed.has(k) && !PREDEFINED_ARGS.includes(k));
    if (unused.length) this.out.stream(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
  }
}

interface StageCtx {
  stage: Stage;
  args: Map<string, string>;
  cmdSet: boolean;
}
