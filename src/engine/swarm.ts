/**
 * Swarm and managed plugins: berth runs neither. It answers as a dockerd that is not in a swarm
 * and has no plugin installed, in dockerd's words (client libraries match on them: `swarm
 * leave --force` in a teardown ignores exactly "This node is not part of a swarm"), and refuses
 * what would need one: `swarm init/join` (berth scales out through Kubernetes, over CRI) and
 * installing a plugin (its volume and network drivers are built in).
 */
import { invalidArgument, notFound, notImplemented, unavailable } from '../base/errors.js';
import type { Filters } from './filters.js';

/** dockerd's errNoSwarm (503), for every manager endpoint of a node outside a swarm. */
export const NOT_A_MANAGER =
  'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
/** dockerd's errNoSwarm for `swarm leave` (503). */
export const NOT_IN_SWARM = 'This node is not part of a swarm';
/** berth's refusal of `swarm init` / `swarm join` (503, as dockerd's "already part of a swarm"). */
export const NO_SWARM_HERE =
  'berth does not run Docker Swarm: it scales out through Kubernetes, which drives it over CRI, instead. ' +
  'Run services on a Kubernetes cluster (berth as the node runtime) rather than with "docker swarm"';

export type SwarmKind = 'swarm' | 'node' | 'service' | 'secret' | 'config';

export class SwarmVerbs {
  /** Every read or change of swarm state: nodes, services, tasks, secrets, configs, the unlock key. */
  manager(): never {
    throw unavailable(NOT_A_MANAGER);
  }

  /**
   * An `update` of a swarm object: dockerd reads `?version=` first (400 in its words), then finds
   * no swarm. Secrets and configs say only "invalid secret version" / "invalid config version".
   */
  update(kind: SwarmKind, version: string | null): never {
    const v = version ?? '';
    if (!/^\d+$/.test(v) || BigInt(v) >= 2n ** 64n) {
      if (kind === 'secret' || kind === 'config') throw invalidArgument(`invalid ${kind} version`);
      const why = /^\d+$/.test(v) ? 'value out of range' : 'invalid syntax';
      throw invalidArgument(`invalid ${kind} version '${v}': strconv.ParseUint: parsing ${JSON.stringify(v)}: ${why}`);
    }
    this.manager();
  }

  /** `swarm leave` (with or without force). */
  leave(): never {
    throw unavailable(NOT_IN_SWARM);
  }

  /** `swarm init` and `swarm join`. */
  join(): never {
    throw unavailable(NO_SWARM_HERE);
  }
}

/** The filters `GET /plugins` takes (dockerd's acceptedPluginFilterTags), checked as dockerd checks them. */
export function checkPluginFilters(f: Filters): void {
  for (const k of Object.keys(f))
    if (k !== 'capability' && k !== 'enabled') throw invalidArgument(`Invalid filter '${k}'`);
  for (const v of f['enabled'] ?? [])
    if (v !== 'true' && v !== 'false') throw invalidArgument(`Invalid filter 'enabled=[${f['enabled']!.join(' ')}]'`);
}

/** A plugin reference as dockerd names it in "not found" after parsing it: a bare name gets `:latest`. */
function pluginRef(name: string): string {
  if (!name) throw invalidArgument('invalid reference format');
  const last = name.slice(name.lastIndexOf('/') + 1);
  return last.includes(':') || name.includes('@') ? name : `${name}:latest`;
}

export class PluginVerbs {
  /** `GET /plugins`: no plugin is installed. */
  list(f: Filters): [] {
    checkPluginFilters(f);
    return [];
  }

  /** inspect, remove, enable, disable, set, push: the plugin is not there (404 `plugin "x" not found`). */
  find(name: string): never {
    throw notFound(`plugin ${JSON.stringify(name)} not found`);
  }

  /** `POST /plugins/{name}/enable?timeout=N`: dockerd reads the timeout with Atoi before it looks. */
  enable(name: string, timeout: string | null): never {
    const t = timeout ?? '';
    if (!/^[+-]?\d+$/.test(t)) throw invalidArgument(`strconv.Atoi: parsing ${JSON.stringify(t)}: invalid syntax`);
    return this.find(name);
  }

  /** `POST /plugins/{name}/upgrade?remote=R`: the remote must parse, then the plugin is looked up. */
  upgrade(name: string, remote: string | null): never {
    pluginRef(remote ?? '');
    throw notFound(`plugin ${JSON.stringify(pluginRef(name))} not found`);
  }

  /** pull, privileges and create: installing a plugin, which berth does not do. */
  install(op: 'pull' | 'privileges' | 'create', ref: string | null): never {
    if (!ref)
      throw invalidArgument(
        op === 'create' ? 'failed to parse reference : invalid reference format' : 'invalid reference format',
      );
    pluginRef(ref);
    throw notImplemented(
      `plugin ${op === 'privileges' ? 'install' : op} is not supported: berth runs no managed plugins ` +
        '(its volume and network drivers are built in)',
    );
  }
}
