/** Engine API volume request bodies, decoded as dockerd decodes them (see engine-api.ts). */
import { invalidArgument } from '../base/errors.js';
import { decodeGo } from './go-json.js';
import * as schema from './engine-schema.js';
import { CONTROL } from './engine-api.js';

type Obj = Record<string, unknown>;

/** A volume's name becomes a directory: at most NAME_MAX (255) bytes. */
export function checkVolumeName(name: string): void {
  if (Buffer.byteLength(name) > 255)
    throw invalidArgument(`create ${name.slice(0, 64)}...: volume name is too long (at most 255 bytes)`);
}

/** POST /volumes/create body. */
export function parseVolumeCreate(v: unknown): {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string>;
  Labels?: Record<string, string>;
} {
  const { ClusterVolumeSpec: cluster, ...o } = decodeGo(schema.volumeCreateOptions, v ?? {}) as Obj;
  if (cluster) throw invalidArgument('cluster volumes need Swarm mode, which berth does not have');
  if (typeof o['Name'] === 'string') checkVolumeName(o['Name']);
  for (const [k, val] of Object.entries((o['DriverOpts'] as Record<string, string> | undefined) ?? {}))
    if (CONTROL.test(k) || val.includes('\0')) throw invalidArgument(`invalid volume option ${JSON.stringify(k)}`);
  return o as { Name?: string; Driver?: string; DriverOpts?: Record<string, string>; Labels?: Record<string, string> };
}
