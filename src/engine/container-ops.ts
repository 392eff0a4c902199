/**
 * Container verbs: one method per operation a front door offers on a container. Each owns its
 * checks (the status table of ./state.ts) and its events; lifecycle.ts does the starting and
 * stopping. Stdio (attach, logs, stats, top) is in ./container-io.ts, files (cp, export) in
 * ./container-files.ts.
 */
import { BerthError, internal, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import type { ContainerId } from '../base/ids.js';
import { parseUpdateBody } from '../spec/engine-api.js';
import { restoreOf } from './checkpoint.js';
import { checkResources, resourcesOf } from './config.js';
import {
  checkContainerFilters,
  containerMatches,
  factsOf,
  listContext,
  listFacts,
  listSizes,
  type ContainerFacts,
} from './container-facts.js';
import type { Filters } from './filters.js';
import { labelsMatch } from './filters.js';
import { isActive } from './state.js';
import { parseWaitCondition } from './waiters.js';
import type { Engine } from './engine.js';
import { actorOf } from './actor.js';
import { linkHosts, resolveLinks } from './links.js';
import { writeNetFiles } from './net.js';

export type { ContainerFacts };

export class ContainerVerbs {
  constructor(private readonly e: Engine) {}

  /**
   * `docker ps`: newest first; only active ones unless `all`, a status/exited filter or a
   * `limit` (dockerd: a limit > 0 implies all; 20.10 listed a created container for `?limit=5`
   * and not for `?limit=0` or `?limit=-1`).
   */
  async list(o: {
    all: boolean;
    filters: Filters;
    limit: number | undefined;
    size: boolean;
  }): Promise<ContainerFacts[]> {
    const f = o.filters;
    checkContainerFilters(f);
    for (const h of f['health'] ?? [])
      if (!['starting', 'healthy', 'unhealthy', 'none'].includes(h))
        throw invalidArgument(`Unrecognised filter value for health: ${h}`);
    const all = o.all || (o.limit !== undefined && o.limit > 0);
    let list = this.e.store.inNamespace('');
    if (!all && !f['status'] && !f['exited']) list = list.filter((c) => isActive(c.state.status));
    // every per-container fact read once for the whole list (container-facts.ts ListContext)
    const ctx = listContext(this.e);
    if (Object.keys(f).length) list = list.filter((c) => containerMatches(this.e, c, f, ctx));
    const created = new Map(list.map((c) => [c, Date.parse(c.created)]));
    list.sort((a, b) => created.get(b)! - created.get(a)!);
    if (o.limit !== undefined && o.limit > 0) list = list.slice(0, o.limit);
    if (o.size) ctx.sizes = await listSizes(this.e, list);
    return list.map((c) => listFacts(this.e, c, ctx));
  }

  inspect(ref: string, size: boolean): Promise<ContainerFacts> {
    return factsOf(this.e, this.e.get(ref), size);
  }

  /** POST /containers/create (all-or-nothing, engine.ts). */
  create(
    body: unknown,
    name: string | undefined,
    platform: string | undefined,
  ): Promise<{ id: ContainerId; warnings: string[] }> {
    return this.e.create(body, name, platform);
  }

  /**
   * Starts the container (from a checkpoint when `checkpoint` names one); false when it ran
   * already. With a trust policy the image is checked again first.
   */
  async start(ref: string, checkpoint: string | null, checkpointDir: string | null): Promise<boolean> {
    const rec = this.e.get(ref);
    const restore = checkpoint ? await restoreOf(this.e, rec, checkpoint, checkpointDir) : undefined;
    if (this.e.trust && rec.state.status !== 'running')
      await this.e.trust.check(this.e.images.get(rec.imageId), rec.config.Image ?? rec.imageId);
    return this.e.lifecycle.start(rec, restore);
  }

  /** False when it was not running. */
  stop(ref: string, timeoutSec: number | undefined, signal: string | undefined): Promise<boolean> {
    return this.e.lifecycle.stop(this.e.get(ref), timeoutSec, signal);
  }

  restart(ref: string, timeoutSec: number | undefined, signal: string | undefined): Promise<void> {
    return this.e.lifecycle.restart(this.e.get(ref), timeoutSec, signal);
  }

  kill(ref: string, signal: string | undefined): Promise<void> {
    return this.e.lifecycle.kill(this.e.get(ref), signal);
  }

  pause(ref: string): Promise<void> {
    return this.e.lifecycle.pause(this.e.get(ref));
  }

  unpause(ref: string): Promise<void> {
    return this.e.lifecycle.unpause(this.e.get(ref));
  }

  remove(ref: string, o: { force: boolean; volumes: boolean }): Promise<void> {
    return this.e.remove(this.e.get(ref).id, o);
  }

  /**
   * `DELETE /containers/{parent}/{alias}?link=1` (`docker rm --link`): removes the legacy link
   * `/<parent>/<alias>` from the parent's HostConfig.Links (null once none is left); neither
   * container changes otherwise. dockerd 20.10 finds the link by that name (404 "No such
   * container: lu/db" once it is gone) and refuses a plain container name with a 500 "Conflict,
   * cannot remove the default link name of the container". A running parent's /etc/hosts is
   * rewritten without the link's line (dockerd's updateNetwork).
   */
  async removeLink(ref: string): Promise<void> {
    const name = ref.startsWith('/') ? ref : `/${ref}`;
    const cut = name.lastIndexOf('/');
    if (cut === 0) {
      this.e.get(ref); // 404 first, as dockerd looks the name up before it parses it
      throw internal('Conflict, cannot remove the default link name of the container');
    }
    const parent = this.e.store.find(name.slice(0, cut));
    const links = parent?.hostConfig.Links ?? [];
    const left = links.filter((l) => l.slice(l.indexOf(':') + 1) !== name);
    if (!parent || left.length === links.length) throw notFound(`No such container: ${ref}`);
    if (left.length) parent.hostConfig.Links = left;
    else delete parent.hostConfig.Links;
    this.e.store.save(parent);
    if (parent.state.status !== 'running') return;
    let hosts: string[];
    try {
      hosts = linkHosts(resolveLinks(this.e.networks, parent, (r) => this.e.store.find(r)));
    } catch {
      return; // a linked container stopped meanwhile: its next start writes the file
    }
    await writeNetFiles(this.e.networks, parent, this.e.containerDir(parent.id), hosts);
  }

  /**
   * `docker rename`. The new name's refusals carry dockerd 20.10's prefix: "Error when allocating
   * new name: Invalid container name (/bad name), only ..." (400) and "Error when allocating new
   * name: Conflict. The container name \"/x\" is already in use ..." (409).
   */
  async rename(ref: string, name: string): Promise<void> {
    try {
      await this.e.rename(ref, name);
    } catch (e) {
      if (!isBerthError(e) || !/^(Invalid container name \(|Conflict\. The container name )/.test(e.message)) throw e;
      const msg = e.message.replace(/^Invalid container name \((?!\/)/, 'Invalid container name (/');
      throw new BerthError(e.code, `Error when allocating new name: ${msg}`, { cause: e });
    }
  }

  /**
   * Waits for `condition` (dockerd's: not-running, next-exit, removed). `ready` is called once the
   * wait is set up (the docker CLI starts the container only after the response's headers).
   */
  async wait(ref: string, condition: string | null, ready: () => void): Promise<{ code: number; error: string }> {
    const c = this.e.get(ref);
    const cond = parseWaitCondition(condition);
    ready();
    const code =
      cond === 'not-running' && !isActive(c.state.status) ? c.state.exitCode : await this.e.waiters.add(c.id, cond);
    return { code, error: this.e.store.find(c.id)?.state.error ?? '' };
  }

  /**
   * `docker update`: the resources and restart policy the body sets (the docker CLI sends unset
   * ones as 0 or ""), checked as a whole like a create before anything changes; a running or
   * paused container's cgroup changes too. `body` reads the request (after the container is
   * found). Returns dockerd's warnings.
   */
  async update(ref: string, body: () => Promise<unknown>): Promise<string[]> {
    const c = this.e.get(ref);
    const { resources, restartPolicy } = parseUpdateBody(await body());
    if (restartPolicy && c.hostConfig.AutoRemove && restartPolicy.Name !== 'no')
      throw invalidArgument('Restart policy cannot be updated because AutoRemove is enabled for the container');
    const set = Object.fromEntries(
      Object.entries(resources).filter(([, v]) => v !== undefined && v !== null && v !== 0 && v !== ''),
    );
    if (c.hostConfig.NanoCpus && !set['NanoCpus'] && (set['CpuQuota'] || set['CpuPeriod']))
      throw invalidArgument('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
    if (set['NanoCpus'] && !set['CpuQuota'] && !set['CpuPeriod'] && (c.hostConfig.CpuQuota || c.hostConfig.CpuPeriod))
      throw invalidArgument('Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
    const merged = { ...c.hostConfig, ...set, ...(restartPolicy ? { RestartPolicy: restartPolicy } : {}) };
    const host = this.e.runtime.host();
    const warnings = checkResources(merged, host, true);
    if (set['BlkioWeight'] && !host.blkioWeight) merged.BlkioWeight = c.hostConfig.BlkioWeight ?? 0;
    this.e.check(c, 'update');
    if (c.state.status === 'running' || c.state.status === 'paused')
      await this.e.runtime.update(c.id, resourcesOf(merged));
    c.hostConfig = merged;
    this.e.store.save(c);
    this.e.events.emit('container', 'update', c.id, actorOf(c));
    return warnings;
  }

  /** Removes the stopped containers (matching `label` filters); returns their ids and the bytes freed. */
  async prune(filters: Filters): Promise<{ deleted: string[]; reclaimed: number }> {
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const c of this.e.store.inNamespace('')) {
      if (
        !['exited', 'created', 'dead'].includes(c.state.status) ||
        !labelsMatch(filters['label'], c.config.Labels ?? {})
      )
        continue;
      reclaimed += await this.e.snapshots.usage(c.id).catch(() => 0);
      await this.e.remove(c.id, { force: false });
      deleted.push(c.id);
    }
    return { deleted, reclaimed };
  }

  /** `docker diff`: the writable layer's changes (null when none, as dockerd answers). */
  async changes(ref: string) {
    const c = this.e.get(ref);
    return this.e.snapshots.diff(c.id);
  }
}
