/**
 * What API versions below 1.24 do that later ones do not (the gates are spec/api-version.ts):
 *
 * - `POST /containers/{id}/start` with a HostConfig in the body: it replaces the container's host
 *   config before the start, as dockerd's setHostConfig does (mounts, links and networks decided
 *   again from it), unless the container is running (304, nothing applied: dockerd checks that
 *   first). The body is `{"HostConfig": {...}}` or the HostConfig's fields at the top level
 *   (dockerd's ContainerConfigWrapper takes the nested one when it is there).
 * - `POST /containers/{id}/copy` `{"Resource": path}`: the path as a tar (docker cp before 1.8).
 */
import type { Writable } from 'node:stream';
import { invalidArgument } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { parseCreateBody } from '../spec/engine-api.js';
import { hostConfigFields } from '../spec/engine-schema.js';
import { checkResources, logConfigOf, parseSecurityOpts } from './config.js';
import type { ContainerFiles } from './container-files.js';
import type { ContainerVerbs } from './container-ops.js';
import type { Engine } from './engine.js';
import { planLinks } from './links.js';
import { makeBindSources, planMounts } from './mounts.js';
import { planNetworks } from './net.js';

const HOST_CONFIG_KEYS = new Set(Object.keys(hostConfigFields).map((k) => k.toLowerCase()));

export class LegacyVerbs {
  constructor(
    private readonly e: Engine,
    private readonly containers: ContainerVerbs,
    private readonly files: ContainerFiles,
  ) {}

  /** API < 1.24's start with a HostConfig body; false when the container was running already (304). */
  async startWithHostConfig(ref: string, body: unknown): Promise<boolean> {
    const rec = this.e.get(ref);
    if (rec.state.status === 'running' || rec.state.status === 'paused' || rec.state.status === 'restarting')
      return this.containers.start(ref, null, null);
    if (body !== null && !isObject(body)) throw invalidArgument('json: cannot unmarshal into a HostConfig');
    const nestedKey = body ? Object.keys(body).find((k) => k.toLowerCase() === 'hostconfig') : undefined;
    // Go allocates the inline HostConfig only when one of its fields is in the body: `{}` changes nothing
    const inline = body !== null && Object.keys(body).some((k) => HOST_CONFIG_KEYS.has(k.toLowerCase()));
    const raw = nestedKey !== undefined && body![nestedKey] !== null ? body![nestedKey] : inline ? body : null;
    if (raw !== null) {
      // decoded and checked as a create's HostConfig (Go's rules: keys in either case, null = unset)
      const { hostConfig: hc } = parseCreateBody({ HostConfig: raw });
      hc.Runtime = rec.runtime;
      const rp = hc.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 };
      hc.RestartPolicy = rp.Name === '' ? { Name: 'no', MaximumRetryCount: 0 } : rp;
      hc.LogConfig = logConfigOf(hc.LogConfig);
      checkResources(hc, this.e.runtime.host());
      if (hc.Links?.length) hc.Links = planLinks(hc.Links, rec.name, (r) => this.e.store.find(r));
      if (hc.AutoRemove && hc.RestartPolicy.Name !== 'no')
        throw invalidArgument("can't create 'AutoRemove' container with restart policy");
      const networks = planNetworks(this.e.networks, hc, {}, rec.config, (r) => this.e.store.find(r));
      parseSecurityOpts(hc.SecurityOpt ?? [], this.e.runtime.host());
      this.e.lifecycle.validateSpec(hc);
      const { mounts } = await planMounts(this.e.volumes, hc, rec.config, (r) => this.e.store.get(r).mounts ?? []);
      await makeBindSources(mounts);
      rec.hostConfig = hc;
      rec.networks = networks;
      rec.mounts = mounts;
      this.e.store.save(rec);
    }
    return this.containers.start(ref, null, null);
  }

  /** API < 1.24's copy: `resource` as a tar into `open()` (dockerd: "Path cannot be empty", 400). */
  copy(ref: string, resource: string, open: () => Writable): Promise<void> {
    this.e.get(ref);
    if (!resource) throw invalidArgument('Path cannot be empty');
    return this.files.read(ref, resource, () => open());
  }
}
