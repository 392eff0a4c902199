/**
 * `--cache-from` as dockerd's legacy builder applies it, as pure functions of image configs:
 * a cached state counts only when it is an ancestor of one of those images, and an image whose
 * history and layers start with the current state and whose next history entry is this step
 * lends its layer.
 */
import type { ImageConfig, ImageRuntimeConfig } from '../spec/image.js';
import type { State } from './steps.js';

type History = NonNullable<ImageConfig['history']>[number];
const sameEntry = (e: History, f: History) => e.created_by === f.created_by && !!e.empty_layer === !!f.empty_layer;

/** Whether a cached state's config is an ancestor of one of `images` (its history and layers start it). */
export function isAncestorOfAny(c: ImageConfig, images: readonly ImageConfig[]): boolean {
  const h = c.history ?? [];
  return images.some((src) => {
    const H = src.history ?? [];
    if (H.length < h.length || src.rootfs.diff_ids.length < c.rootfs.diff_ids.length) return false;
    return h.every((e, i) => sameEntry(e, H[i]!)) && c.rootfs.diff_ids.every((d, i) => src.rootfs.diff_ids[i] === d);
  });
}

/**
 * dockerd's --cache-from rule: the config after this step lent by the first of `images` whose
 * history and layers start with `state`'s and whose next entry is `createdBy` (its layer must be
 * in the store), or null.
 */
export function lentByImages(
  images: readonly ImageConfig[],
  state: State,
  createdBy: string,
  runtimeConfig: ImageRuntimeConfig,
  hasLayer: (diffId: string) => boolean,
  now: () => number,
): ImageConfig | null {
  const h = state.config.history ?? [];
  const diffs = state.config.rootfs.diff_ids;
  for (const src of images) {
    const H = src.history ?? [];
    const next = H[h.length];
    if (!next || next.created_by !== createdBy) continue;
    if (!h.every((e, i) => sameEntry(e, H[i]!))) continue;
    if (!diffs.every((dd, i) => src.rootfs.diff_ids[i] === dd)) continue;
    const diff = next.empty_layer ? null : src.rootfs.diff_ids[diffs.length];
    if (!next.empty_layer && (!diff || !hasLayer(diff))) continue;
    return {
      ...state.config,
      created: next.created ?? new Date(now()).toISOString(),
      config: runtimeConfig,
      rootfs: { type: 'layers', diff_ids: [...diffs, ...(diff ? [diff] : [])] },
      history: [...h, next],
    };
  }
  return null;
}
