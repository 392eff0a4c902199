/**
 * Build verbs: `POST /build` and `/build/prune` through the builder (which pulls with the one
 * pull of ./images.ts). The engine emits the `tag` events of a build's names.
 */
import type { Readable } from 'node:stream';
import { isObject } from '../base/json.js';
import { isIP } from 'node:net';
import { conflict, errorMessage, invalidArgument } from '../base/errors.js';
import type { Builder, BuildOutput, BuildRequest, StepEvent, StepLimits } from '../builder/builder.js';
import { parseReference } from '../image/reference.js';
import { registryHostOf } from '../spec/distribution.js';
import type { Credentials, ImageRecord } from './images.js';
import type { Engine } from './engine.js';

export type { BuildOutput, BuildRequest, StepEvent };
export { buildErrorDetail } from '../builder/types.js';

/**
 * X-Registry-Config's table ({registry: {username, password}}) as the build's credentials: the
 * entry whose host is the reference's registry (any docker.io name for Docker Hub's images).
 */
export function registryCredentials(table: Record<string, unknown>): (ref: string) => Credentials | null {
  return (ref) => {
    const host = registryHostOf(parseReference(ref).name) ?? 'docker.io';
    for (const [k, c] of Object.entries(table)) {
      const key = k.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
      const matches = key === host || (host === 'docker.io' && /(^|\.)docker\.io$/.test(key));
      if (matches && isObject(c) && typeof c['username'] === 'string' && typeof c['password'] === 'string')
        return { username: c['username'], password: c['password'] };
    }
    return null;
  };
}

/**
 * extrahosts (repeatable, `host:ip`, split at the first colon as dockerd does; `host-gateway` is the
 * host itself, as RUN steps use the host's network). dockerd's words for a bad address.
 */
export function extraHostsOf(list: string[]): Array<{ host: string; ip: string }> {
  return list.map((h) => {
    const i = h.indexOf(':');
    if (i < 0) throw invalidArgument(`bad format for add-host: "${h}"`);
    const ip = h.slice(i + 1).replace(/^\[(.*)\]$/, '$1');
    if (ip !== 'host-gateway' && !isIP(ip)) throw invalidArgument(`invalid IP address in add-host: "${ip}"`);
    return { host: h.slice(0, i), ip: ip === 'host-gateway' ? '127.0.0.1' : ip };
  });
}

/**
 * The RUN steps' limits from the query (memory, memswap, cpushares, cpuquota, cpuperiod,
 * cpusetcpus, cpusetmems, shmsize, ulimits): numbers that do not parse are 0 (unset), as dockerd
 * reads them; `ulimits` is JSON `[{"Name","Soft","Hard"}]` (null: none).
 */
export function stepLimitsOf(get: (k: string) => string | null | undefined): StepLimits {
  const int = (k: string) => {
    const v = Number(get(k) ?? '');
    return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  };
  const resources: StepLimits['resources'] = {};
  const set = <K extends keyof StepLimits['resources']>(k: K, v: StepLimits['resources'][K] | undefined) => {
    if (v !== undefined) resources[k] = v;
  };
  set('memory', int('memory'));
  const swap = Number(get('memswap') ?? '');
  set('memorySwap', swap === -1 ? -1 : int('memswap'));
  set('cpuShares', int('cpushares'));
  set('cpuQuota', int('cpuquota'));
  set('cpuPeriod', int('cpuperiod'));
  set('cpusetCpus', get('cpusetcpus') || undefined);
  set('cpusetMems', get('cpusetmems') || undefined);
  const ulimits: StepLimits['ulimits'] = [];
  const text = get('ulimits');
  if (text) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw invalidArgument(`error reading ulimit settings: ${errorMessage(e)}`); // dockerd's prefix
    }
    if (v !== null && !Array.isArray(v)) throw invalidArgument('error reading ulimit settings: not a list');
    for (const u of (v as unknown[] | null) ?? []) {
      const f = isObject(u) ? Object.fromEntries(Object.entries(u).map(([k, x]) => [k.toLowerCase(), x])) : {};
      const [name, soft, hard] = [f['name'], f['soft'], f['hard']];
      if (typeof name !== 'string' || !Number.isInteger(soft) || !Number.isInteger(hard))
        throw invalidArgument(`error reading ulimit settings: invalid ulimit ${JSON.stringify(u)}`);
      ulimits.push({ name, soft: soft as number, hard: hard as number });
    }
  }
  const shm = int('shmsize');
  return { resources, ulimits, ...(shm ? { shmSize: shm } : {}) };
}

export class BuildVerbs {
  constructor(
    private readonly e: Engine,
    /** the builder, loaded on the first build or prune (../base/lazy.ts) */
    private readonly builder: () => Promise<Builder>,
  ) {}

  /**
   * Builds the context tar `input`; the image's names are tagged (and reported as events).
   * `networkContainer` (networkmode=container:<id>): the RUN steps join that container's network.
   */
  async build(
    input: Readable,
    req: BuildRequest,
    out: BuildOutput,
    opts: { networkContainer?: string } = {},
  ): Promise<ImageRecord> {
    const ref = opts.networkContainer;
    if (ref !== undefined)
      req = {
        ...req,
        joinNetns: () => {
          const rec = this.e.get(ref);
          if (rec.state.status !== 'running' || !rec.state.pid)
            throw conflict(`cannot join network of a non running container: ${rec.name.replace(/^\//, '')}`);
          return `/proc/${rec.state.pid}/ns/net`;
        },
      };
    const img = await (await this.builder()).buildFromTar(input, req, out);
    for (const t of req.tags) this.e.events.emit('image', 'tag', img.id, { name: t });
    return img;
  }

  async prune(): Promise<{ entries: number; freed: number }> {
    return (await this.builder()).prune();
  }
}
