/** Parses an image config blob from `unknown`; unknown fields are kept (the object is the JSON). */
import { invalidArgument } from '../base/errors.js';
import { asObject, isObject } from '../base/json.js';
import type { ImageConfig } from './image.js';

export function parseImageConfig(bytes: Buffer | string): ImageConfig {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString());
  } catch (e) {
    throw invalidArgument('invalid image config: not JSON', e);
  }
  const o = asObject(v, 'image config');
  const rootfs = o['rootfs'];
  if (
    !isObject(rootfs) ||
    !Array.isArray(rootfs['diff_ids']) ||
    !rootfs['diff_ids'].every((d) => typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d))
  )
    throw invalidArgument('invalid image config: rootfs.diff_ids must list sha256 digests');
  if (typeof o['architecture'] !== 'string') o['architecture'] = 'amd64';
  if (typeof o['os'] !== 'string') o['os'] = 'linux';
  if (o['config'] !== undefined && o['config'] !== null && !isObject(o['config']))
    throw invalidArgument('invalid image config: config must be an object');
  if (o['history'] !== undefined && !Array.isArray(o['history']))
    throw invalidArgument('invalid image config: history must be an array');
  return o as unknown as ImageConfig;
}
