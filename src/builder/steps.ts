/**
 * What a step (RUN, COPY/ADD: run-step.ts, copy-step.ts) gets of the build it is part of: the
 * services, the request, the output, and the executor's helpers — so each instruction lives in its
 * own module and the executor (build.ts) keeps the DAG, the cache and the bookkeeping.
 */
import type { ImageConfig, ImageRuntimeConfig } from '../spec/image.js';
import type { BuilderDeps, BuildRequest } from './types.js';
import type { OrderedOutput } from './output.js';
import type { SourceRoot } from './context.js';
import type { CopyPlan } from './copy.js';
import type { Instruction, Stage } from './parser.js';

/** The state after a step: the image config so far, its cache key, its filesystem. */
export interface State {
  config: ImageConfig;
  key: string;
  chainId: string | null;
  /** whether the step that made this state was a cache hit */
  cached?: boolean;
}

/** A stage being built: its ARGs in scope, whether CMD was set in it. */
export interface StageCtx {
  stage: Stage;
  args: Map<string, string>;
  cmdSet: boolean;
}

export const PREDEFINED_ARGS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
];
/** the prefix dockerd's builder gives history entries of steps that ran no command */
export const NOP = '/bin/sh -c #(nop) ';

export interface StepEnv {
  readonly d: BuilderDeps;
  /** the request, its signal aborted when the build stops */
  readonly req: BuildRequest;
  readonly out: OrderedOutput;
  readonly builder: { locked<T>(id: string, fn: () => Promise<T>): Promise<T> };
  readonly context: SourceRoot;
  /** the Dockerfile's escape character */
  readonly escape: string;
  /** SOURCE_DATE_EPOCH, when given: the time written into layers */
  readonly epoch: number | null;
  /** the build's clock: milliseconds since the Unix epoch */
  now(): number;
  /** a word expanded with `vars` and unquoted */
  word(w: string, vars: ReadonlyMap<string, string>): string;
  /** a stage's (before `before`) or an image's filesystem and key, for --from */
  fromChain(ref: string, before: number): Promise<{ chainId: string | null; key: string }>;
  currentStage(ins: Instruction): number;
  /** a read-only view of a chain's filesystem for `fn` */
  withView<T>(chainId: string | null, fn: (dir: string) => Promise<T>): Promise<T>;
  layerOf(plan: CopyPlan): Promise<string>;
  /** the step's next state: from the cache by `parts`, else by running `layer` */
  commit(
    state: State,
    parts: string[],
    createdBy: string,
    runtimeConfig: ImageRuntimeConfig,
    layer: (() => Promise<string | null>) | null,
  ): Promise<State>;
}
