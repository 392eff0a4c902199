/**
 * Name resolution for the embedded DNS: which addresses a name has for the container that asks,
 * as dockerd's embedded server answers. Pure: it reads the endpoints and the containers' names it
 * is given (manager.ts passes its own).
 */
import type { Endpoint, NetworkRecord } from './records.js';

/** What the name server asks of the engine about a container, read when a query comes (a rename shows at once). */
export interface ContainerNames {
  /** its current name, hostname and legacy links (`--link target:alias`) */
  of(id: string): { name: string; hostname: string; links: Array<{ target: string; alias: string }> } | undefined;
  /** the id of the container `ref` names (name or id) */
  idOf(ref: string): string | undefined;
}

/** What resolving a name reads: every endpoint, networks by id, the containers' current names. */
export interface NameView {
  endpoints: Endpoint[];
  find(id: string): NetworkRecord | undefined;
  containers: ContainerNames;
}

/** `name:alias` (or `name`) of EndpointSettings.Links / HostConfig.Links (`/name:/linker/alias`). */
export function parseLinkText(text: string): { target: string; alias: string } {
  const [t = '', a] = text.split(':');
  const target = t.replace(/^\//, '');
  return { target, alias: (a ?? target).split('/').pop() ?? '' };
}

/** The names an endpoint answers to (lower case): its container's current name and hostname, its aliases. */
function namesOf(containers: ContainerNames, e: Endpoint): string[] {
  const c = containers.of(e.containerId);
  const names = c ? [c.name, c.hostname, ...e.names.slice(1)] : e.names;
  return names.filter((x) => x).map((x) => x.toLowerCase());
}

/**
 * Addresses of `qname` for the container at address `client` on network `networkId`, as dockerd's
 * embedded server answers (case-insensitive): on each user network the asking container joins
 * (this one first), a container's name, hostname, alias, short or full id, or a link alias of
 * the asking container; `name.<network>` asks that network only. Empty when nothing matches.
 */
export function resolveName(
  view: NameView,
  networkId: string,
  qname: string,
  client: string,
): { v4: string[]; v6: string[] } {
  const q = qname.toLowerCase();
  const all = view.endpoints;
  const me = all.find((e) => e.networkId === networkId && e.ip === client);
  const netIds = [networkId, ...all.filter((e) => me && e.containerId === me.containerId).map((e) => e.networkId)];
  const nets = [...new Set(netIds)].map((id) => view.find(id)).filter((n): n is NetworkRecord => !!n && !n.isDefault);
  const tries: Array<{ name: string; nets: NetworkRecord[] }> = [{ name: q, nets }];
  for (let i = q.indexOf('.'); i > 0; i = q.indexOf('.', i + 1)) {
    const net = nets.find((n) => n.Name === qname.slice(i + 1)); // dockerd: the network's name exactly
    if (net) tries.push({ name: q.slice(0, i), nets: [net] });
  }
  const mine = me ? view.containers.of(me.containerId) : undefined;
  for (const t of tries) {
    // network by network, this one first: the first one where the name is known answers
    for (const n of t.nets) {
      const on = all.filter((e) => e.networkId === n.Id);
      // the asking container's links: its HostConfig.Links, and its EndpointSettings.Links on this network
      const links = [
        ...(mine?.links ?? []),
        ...on.filter((e) => me && e.containerId === me.containerId).flatMap((e) => (e.links ?? []).map(parseLinkText)),
      ];
      const linked = new Set(
        links
          .filter((l) => l.alias.toLowerCase() === t.name)
          .map((l) => view.containers.idOf(l.target))
          .filter((id): id is string => !!id),
      );
      const hits = on.filter(
        (e) =>
          linked.has(e.containerId) ||
          namesOf(view.containers, e).includes(t.name) ||
          (t.name.length >= 12 && e.containerId.startsWith(t.name)),
      );
      if (hits.length) {
        return {
          v4: [...new Set(hits.map((e) => e.ip))],
          v6: [...new Set(hits.map((e) => e.ip6).filter((x): x is string => !!x))],
        };
      }
    }
  }
  return { v4: [], v6: [] };
}
