/**
 * The build executor: a Dockerfile's stages as a DAG (a stage starts at once and waits only for
 * the stages it reads from, so independent stages run concurrently; `--target` builds only what
 * the target needs), each instruction a step with a cache key chained from the previous one.
 * Metadata steps change the config (history entry with `empty_layer`: config-steps.ts), RUN runs
 * a container (run-step.ts, run.ts), COPY/ADD write their layer directly (copy-step.ts, copy.ts);
 * those get the build through `StepEnv` (steps.ts). Only the final image is registered;
 * intermediate states live in the build cache.
 */
import { posix } from 'node:path';
import { errorMessage, invalidArgument, isBerthError } from '../base/errors.js';
import { shortId } from '../base/ids.js';
import type { ImageRecord } from '../image/types.js';
import { DEFAULT_PATH } from '../runtime/spec.js';
import { resolveUser } from '../runtime/user.js';
import type { ImageConfig, ImageRuntimeConfig } from '../spec/image.js';
import { expand, expandWord, parseDockerfile, type Instruction, type Stage } from './parser.js';
import { stepKey } from './cache.js';
import type { SourceRoot } from './context.js';
import { planMkdir, writeCopyLayer, type CopyPlan } from './copy.js';
import { configStep } from './config-steps.js';
import { NOP, PREDEFINED_ARGS, type StageCtx, type State, type StepEnv } from './steps.js';
import { runInstruction } from './run-step.js';
import { copyInstruction } from './copy-step.js';
import {
  ParseFailed,
  StepFailed,
  type BuildHost,
  type BuilderDeps,
  type BuildOutput,
  type BuildRequest,
} from './types.js';
import { systemClock, type Clock } from '../base/clock.js';
import { log } from '../base/log.js';
import { OrderedOutput } from './output.js';
import { BuildArgs } from './args.js';
import { commitStep, configId } from './commit.js';
import { withChainView } from './view.js';

export const copyOf = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** One build: its stages, their results, the step counter and the build-arg bookkeeping. */
export class BuildRun implements StepEnv {
  private readonly results = new Map<number, Promise<State>>();
  private readonly needed = new Set<number>();
  /** ARG scoping: the global ARGs, values, the build args consumed */
  private readonly argScope: BuildArgs;
  /** the ARGs before the first FROM: steps of their own in dockerd's stream (a header, nothing else) */
  private globalArgs: Instruction[] = [];
  private total = 0;
  private readonly numbers = new Map<Instruction, number>();
  /** the configs of the `--cache-from` images found */
  readonly cacheFrom: ImageConfig[] = [];
  readonly epoch: number | null;
  /** aborted when a stage fails, so that the stages still running stop */
  private readonly stop = new AbortController();
  /** the first stage failure that was not an abort: what the build reports */
  firstError: unknown = null;
  /** the stage that failed first (-1: none) */
  failedStage = -1;
  readonly req: BuildRequest;
  private readonly clock: Clock;
  /** the build's stream, in dockerd's (stage by stage) order */
  readonly out: OrderedOutput;
  /** the stage built last (the target): the `labels` of the request are its last steps */
  private target = -1;

  constructor(
    readonly builder: BuildHost,
    readonly d: BuilderDeps,
    request: BuildRequest,
    out: BuildOutput,
    readonly escape: string,
    private readonly file: string,
    readonly context: SourceRoot,
    private readonly stages: Stage[],
  ) {
    this.clock = d.clock ?? systemClock;
    this.out = new OrderedOutput(out, { rm: request.remove ?? true, force: request.forceRemove ?? false });
    const req = (this.req = { ...request, signal: AbortSignal.any([request.signal, this.stop.signal]) });
    this.argScope = new BuildArgs(
      req.buildArgs,
      (w, vars) => this.word(w, vars),
      (ins, reason) => this.fail(ins, reason),
    );
    const e = req.buildArgs['SOURCE_DATE_EPOCH'];
    this.epoch = e !== undefined && /^\d+$/.test(e) ? Number(e) : null;
    if (e !== undefined) this.argScope.consume('SOURCE_DATE_EPOCH');
    for (const ref of req.cacheFrom) {
      try {
        this.cacheFrom.push(d.images.get(ref).config);
      } catch {
        // dockerd only logs it: "Could not look up <ref> for cache resolution, skipping"
        log.warn('build: cache-from image not found, skipping', { ref });
      }
    }
  }

  private fail(ins: Instruction, e: unknown): never {
    const msg = errorMessage(e);
    if (e instanceof StepFailed || e instanceof ParseFailed) throw e;
    throw new StepFailed(this.file, ins.line, ins.name, msg, e);
  }

  /** The ARGs before the first FROM, with --build-arg values and the predefined platform ARGs. */
  globalScope(args: Instruction[]): Map<string, string> {
    this.globalArgs = args;
    return this.argScope.globalScope(args, this.req.platform);
  }

  private stageRef(ref: string, before: number): Stage | undefined {
    const lower = ref.toLowerCase();
    const byName = this.stages.find((s) => s.name === lower && s.index < before);
    if (byName) return byName;
    if (/^\d+$/.test(ref)) {
      const s = this.stages[Number(ref)];
      if (!s || s.index >= before)
        throw invalidArgument(`invalid stage index ${ref}: only earlier stages can be referenced`);
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
        const froms = [
          ...(ins.flags['from'] ?? []),
          ...(ins.flags['mount'] ?? []).map((m) => /(?:^|,)from=([^,]+)/.exec(m)?.[1] ?? '').filter(Boolean),
        ];
        for (const f of froms) {
          const dep = this.stageRef(expand(f, globals, this.escape), s.index);
          if (dep) visit(dep);
        }
      }
    };
    visit(target);
    this.target = target.index;
    for (const ins of this.globalArgs) this.numbers.set(ins, ++this.total);
    for (const s of this.stages) {
      if (!this.needed.has(s.index)) continue;
      for (const ins of [s.from, ...s.instructions]) this.numbers.set(ins, ++this.total);
    }
    this.total += Object.keys(this.req.labels).length; // dockerd adds one LABEL step per label
    this.out.setOrder([...this.needed]);
    for (const ins of this.globalArgs) this.header(ins);
    // independent stages start now; each waits only for what it reads; the first failure stops all
    for (const i of this.needed)
      this.stage(i).catch((e: unknown) => {
        if (this.req.signal.aborted) return;
        this.firstError = e;
        this.failedStage = i;
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
      const stage = this.stages[index]!;
      p = this.out.inStage(index, () => this.runStage(stage));
      this.results.set(index, p);
    }
    return p;
  }

  private header(ins: Instruction): void {
    this.headerText(this.numbers.get(ins) ?? 0, ins.original);
  }

  /** dockerd writes the step line and its newline as two messages */
  private headerText(n: number, text: string): void {
    this.out.stream(`Step ${n || '?'}/${this.total} : ${text}`);
    this.out.stream('\n');
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
    // dockerd: " ---> <id>" after FROM (" ---> " for scratch), or after the base image's ONBUILD triggers
    const shown = (s: State) =>
      this.out.stream(` ---> ${s.key === stepKey('scratch') ? '' : shortId(configId(s.config))}\n`);
    if (!onbuild.length) shown(state);
    this.out.step({
      stage: this.stageName(stage),
      index: this.numbers.get(stage.from)!,
      total: this.total,
      text: stage.from.original,
      cached: true,
      ms: performance.now() - t0,
    });
    const ctx: StageCtx = { stage, args, cmdSet: false };
    if (onbuild.length) {
      // dockerd: "# Executing 2 build trigger" "s" "\n", the triggers without their " ---> <id>", then the id
      this.out.stream(`# Executing ${onbuild.length} build trigger`);
      if (onbuild.length > 1) this.out.stream('s');
      this.out.stream('\n');
      this.out.hideIds(true);
      try {
        for (const trigger of onbuild) {
          const ins = parseDockerfile(`FROM scratch\n${trigger}`, this.file).instructions[1]!;
          state = await this.instruction(ctx, state, { ...ins, line: stage.from.line });
        }
      } finally {
        this.out.hideIds(false);
      }
      shown(state);
    }
    for (const ins of stage.instructions) {
      this.req.signal.throwIfAborted();
      this.header(ins);
      const t = performance.now();
      state = await this.instruction(ctx, state, ins);
      this.out.step({
        stage: this.stageName(stage),
        index: this.numbers.get(ins)!,
        total: this.total,
        text: ins.original,
        cached: state.cached ?? false,
        ms: performance.now() - t,
      });
    }
    if (stage.index === this.target) state = await this.labelSteps(stage, state);
    this.out.aux(configId(state.config));
    this.out.finished(stage.index);
    return state;
  }

  /** The request's labels: as dockerd, one `LABEL k=v` step each (sorted by key) at the end of the target. */
  private async labelSteps(stage: Stage, state: State): Promise<State> {
    const labels = Object.entries(this.req.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    let n = this.total - labels.length;
    for (const [k, v] of labels) {
      const text = `LABEL ${k}=${v}`;
      this.headerText(++n, text);
      const t = performance.now();
      const cfg = copyOf(state.config.config ?? {});
      cfg.Labels = { ...(cfg.Labels ?? {}), [k]: v };
      state = await this.commit(state, [`LABEL ${JSON.stringify([k, v])}`], `${NOP} ${text}`, cfg, null);
      this.out.step({
        stage: this.stageName(stage),
        index: n,
        total: this.total,
        text,
        cached: state.cached ?? false,
        ms: performance.now() - t,
      });
    }
    return state;
  }

  private async from(stage: Stage): Promise<State> {
    const ref = expand(stage.from.args[0]!, this.argScope.globals, this.escape);
    const dep = this.stageRef(ref, stage.index);
    if (dep) {
      const s = await this.stage(dep.index);
      return s;
    }
    if (ref.toLowerCase() === 'scratch') {
      const config: ImageConfig = {
        architecture: 'amd64',
        os: 'linux',
        config: { Env: [DEFAULT_PATH] },
        rootfs: { type: 'layers', diff_ids: [] },
        history: [],
      };
      return { config, key: stepKey('scratch'), chainId: null };
    }
    const platform = stage.from.flags['platform']?.[0];
    const img = await this.image(
      ref,
      platform ? expand(platform, this.argScope.globals, this.escape) : undefined,
      this.req.pull,
    );
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
      p = this.d.pull(ref, platform, this.req.credentials(ref), (m) => this.out.progress(m));
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

  now(): number {
    return this.clock.now();
  }

  word(w: string, vars: ReadonlyMap<string, string>): string {
    return expandWord(w, vars, this.escape);
  }

  /** A step through the cache (commit.ts). */
  commit(
    state: State,
    parts: string[],
    createdBy: string,
    runtimeConfig: ImageRuntimeConfig,
    layer: (() => Promise<string | null>) | null,
  ): Promise<State> {
    return commitStep(this, state, parts, createdBy, runtimeConfig, layer);
  }

  private async instruction(ctx: StageCtx, state: State, ins: Instruction): Promise<State> {
    try {
      return await this.dispatch(ctx, state, ins);
    } catch (e) {
      this.out.stepEnded(false);
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
        for (const [k, v] of this.argScope.pairs(ins, vars, true))
          if (v === null) ctx.args.delete(k);
          else ctx.args.set(k, v);
        return meta(`ARG ${ins.args.join(' ')}`);
      }
      case 'WORKDIR':
        return this.workdir(state, cfg, this.word(ins.args[0]!, vars));
      case 'RUN':
        return runInstruction(this, ctx, state, cfg, ins, vars);
      case 'COPY':
      case 'ADD':
        return copyInstruction(this, state, cfg, ins, vars);
      case 'FROM':
        throw invalidArgument('FROM inside a stage');
      default:
        throw invalidArgument(`${ins.name} cannot be built`); // configStep took the others
    }
  }

  /** Mounts a read-only view of a chain for `fn` (a directory when the chain has one layer). */
  withView<T>(chainId: string | null, fn: (dir: string) => Promise<T>): Promise<T> {
    return withChainView(this.d, chainId, fn);
  }

  async layerOf(plan: CopyPlan): Promise<string> {
    const { diffId } = await this.d.images.writeLayer((out) => writeCopyLayer(plan, out));
    return diffId;
  }

  private async workdir(state: State, cfg: ImageRuntimeConfig, dir: string): Promise<State> {
    const path = posix.resolve(cfg.WorkingDir || '/', dir);
    cfg.WorkingDir = path;
    // whether the directory exists follows from the parent's key: a hit needs no look at the filesystem
    return this.commit(state, [`WORKDIR ${path}`], `${NOP}WORKDIR ${path}`, cfg, () => {
      this.out.running(); // dockerd makes the directory in a container
      return this.withView(state.chainId, async (view) => {
        const owner = cfg.User
          ? await resolveUser(view, cfg.User).catch(() => ({ uid: 0, gid: 0 }))
          : { uid: 0, gid: 0 };
        const plan = await planMkdir(view, path, { uid: owner.uid, gid: owner.gid }, this.epoch, this.now());
        return plan ? this.layerOf(plan) : null;
      });
    });
  }

  /** A stage's or an image's filesystem for COPY --from / RUN --mount from=. */
  async fromChain(ref: string, before: number): Promise<{ chainId: string | null; key: string }> {
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

  currentStage(ins: Instruction): number {
    return this.stages.find((s) => s.instructions.includes(ins))?.index ?? this.stages.length;
  }

  warnUnused(): void {
    const unused = this.argScope.unused().filter((k) => !PREDEFINED_ARGS.includes(k));
    if (unused.length) this.out.stream(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
  }
}
