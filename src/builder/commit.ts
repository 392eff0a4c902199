/**
 * A step through the cache (`StepEnv.commit`): the step's key from its parent's and its parts; a
 * hit reuses the cached config (with `--cache-from`, only an ancestor of those images), an image
 * of `--cache-from` may lend the layer, else the step makes its layer and the result is cached.
 * The stream lines are dockerd's (` ---> Using cache`, ` ---> <id>`).
 */
import { createHash } from 'node:crypto';
import { shortId } from '../base/ids.js';
import type { ImageConfig, ImageRuntimeConfig } from '../spec/image.js';
import { stepKey } from './cache.js';
import { isAncestorOfAny, lentByImages } from './cache-from.js';
import type { OrderedOutput } from './output.js';
import type { State } from './steps.js';
import type { BuildHost, BuilderDeps, BuildRequest } from './types.js';

/** An image config's id, as the stream names a step's result. */
export const configId = (c: ImageConfig) => `sha256:${createHash('sha256').update(JSON.stringify(c)).digest('hex')}`;

export interface CommitEnv {
  readonly builder: BuildHost;
  readonly d: BuilderDeps;
  readonly req: BuildRequest;
  readonly out: OrderedOutput;
  /** the configs of the `--cache-from` images found */
  readonly cacheFrom: readonly ImageConfig[];
  /** SOURCE_DATE_EPOCH, when given */
  readonly epoch: number | null;
  now(): number;
}

/**
 * The step's next state: from the cache by `parts`, else by running `layer` (null: the step makes
 * no layer, only config).
 */
export async function commitStep(
  env: CommitEnv,
  state: State,
  parts: string[],
  createdBy: string,
  runtimeConfig: ImageRuntimeConfig,
  layer: (() => Promise<string | null>) | null,
): Promise<State> {
  const key = stepKey(state.key, ...parts);
  if (!env.req.noCache) {
    const hit = env.builder.cache.get(key, (d) => env.d.images.hasLayer(d));
    // with cachefrom, dockerd's cache only answers with ancestors of those images
    if (hit && (env.req.cacheFrom.length === 0 || isAncestorOfAny(hit, env.cacheFrom))) return reuse(env, key, hit);
    const lent = lentByImages(
      env.cacheFrom,
      state,
      createdBy,
      runtimeConfig,
      (d) => env.d.images.hasLayer(d),
      () => env.now(),
    );
    if (lent) {
      env.builder.cache.put(key, lent);
      return reuse(env, key, lent);
    }
  }
  if (!layer) env.out.running(); // dockerd commits a container even for a step that changes only the config
  const diffId = layer ? await layer() : null;
  env.out.stepEnded(true);
  const created = new Date(env.epoch !== null ? env.epoch * 1000 : env.now()).toISOString();
  const config: ImageConfig = {
    ...state.config,
    created,
    config: runtimeConfig,
    rootfs: { type: 'layers', diff_ids: [...state.config.rootfs.diff_ids, ...(diffId ? [diffId] : [])] },
    history: [
      ...(state.config.history ?? []),
      { created, created_by: createdBy, ...(diffId ? {} : { empty_layer: true }) },
    ],
  };
  env.builder.cache.put(key, config);
  const chainId = diffId ? await env.d.images.unpack(config.rootfs.diff_ids) : state.chainId;
  env.out.result(` ---> ${shortId(configId(config))}\n`);
  return { config, key, chainId };
}

async function reuse(env: CommitEnv, key: string, config: ImageConfig): Promise<State> {
  env.out.stream(' ---> Using cache\n');
  env.out.result(` ---> ${shortId(configId(config))}\n`);
  return { config, key, chainId: await env.d.images.unpack(config.rootfs.diff_ids), cached: true };
}
