/**
 * The built-in `bridge` driver, behind the same NetworkDriver interface as plugins
 * (../plugins/interfaces.ts): a Linux bridge per network with the gateway address on it, a veth
 * pair per endpoint (made inside the container's namespace by one `ip -batch`, its host end sent
 * out and plugged into the bridge with syscalls), a name server on user-defined networks (dns.ts),
 * and the daemon's nftables table (nft.ts) with NAT, isolation and the published ports (ports.ts).
 * Everything it makes carries its daemon's mark: the link alias `berth:<id>`, the table's name.
 */
import { randomBytes } from 'node:crypto';
import { conflict, failedPrecondition, invalidArgument } from '../base/errors.js';
import { log } from '../base/log.js';
import type {
  EndpointInfo,
  JoinResult,
  NetworkDriver,
  NetworkRestore,
  NetworkSpec,
  SandboxSpec,
} from '../plugins/interfaces.js';
import type { NameService } from './dns.js';
import { systemNetHost, type NetHost } from './host.js';
import { IFNAME_RE } from './ipam.js';
import { table6Body, tableBody, type TableNetwork } from './nft.js';
import type { PortBinding } from './records.js';
import { interfaceLines, nsArgOf } from './sandbox.js';

const NAME_OPTION = 'com.docker.network.bridge.name';

/** A bridge network's host device: `-o com.docker.network.bridge.name`, else `bb-<daemon>` (default) or `br-<id>`. */
export function bridgeName(n: Pick<NetworkSpec, 'id' | 'options' | 'isDefault'>, daemon: string): string {
  const asked: unknown = n.options[NAME_OPTION];
  const name = asked || (n.isDefault ? `bb-${daemon}` : `br-${n.id.slice(0, 12)}`);
  if (typeof name === 'string' && name.length > 15)
    throw invalidArgument(`bridge name ${name} is longer than 15 characters`);
  // the name goes into ip and nft scripts and a /proc/sys path: an interface name and nothing else
  if (typeof name !== 'string' || !IFNAME_RE.test(name)) {
    throw invalidArgument(
      `invalid bridge name ${JSON.stringify(name)} (${NAME_OPTION}): ` +
        'up to 15 of [a-zA-Z0-9_.-], starting with a letter or digit',
    );
  }
  return name;
}

export class BridgeDriver implements NetworkDriver {
  /** `berth:<daemon id[:8]>`: the alias of every link this daemon made */
  readonly mark: string;
  private readonly table: string;
  /** the bridges that are up, by network id: what the table is rendered from */
  private readonly nets = new Map<string, TableNetwork & { gateway: string; v6?: boolean }>();
  /** whether this daemon's `ip6` table is there (made with the first IPv6 network, removed with the last) */
  private table6 = false;
  /** the nftables rewrite under way (see apply) */
  private applying: Promise<void> = Promise.resolve();

  /**
   * `daemon`: the daemon id's first 8 hex digits; `names`: the name servers it starts on
   * user-defined networks; `ports`: the published ports the table carries; `host`: the host's
   * links, `ip`, `nft` and sysfs (a fake in unit tests).
   */
  constructor(
    private readonly daemon: string,
    private readonly names: NameService,
    private readonly ports: () => PortBinding[],
    private readonly host: NetHost = systemNetHost,
  ) {
    this.mark = `berth:${daemon}`;
    this.table = `berth_${daemon}`;
  }

  async createNetwork(n: NetworkSpec): Promise<{ device: string }> {
    const bridge = bridgeName(n, this.daemon);
    const made = !(await this.ours(bridge));
    try {
      await this.up(n, bridge, made);
      this.nets.set(n.id, {
        bridge,
        Internal: n.internal,
        IPAM: { Config: [{ Subnet: n.pool }] },
        gateway: n.gateway,
        v6: !!n.gateway6,
      });
      await this.apply();
    } catch (e) {
      this.nets.delete(n.id);
      this.names.stop(n.id);
      // only a device this call made: one of the same name that is not berth's stays as it was
      if (made) await this.host.ipQuiet([`link del ${bridge}`]);
      throw e;
    }
    return { device: bridge };
  }

  /**
   * A network of the records at daemon start: its bridge up again (no table yet: `reconcile`).
   * A record an older berth stored with a name that is no interface name is left down and out
   * of the table (the network can still be removed).
   */
  async restoreNetwork(n: NetworkRestore): Promise<void> {
    if (!IFNAME_RE.test(n.device)) {
      log.warn('network left down: its bridge name is not a valid interface name', {
        network: n.name,
        bridge: n.device,
      });
      return;
    }
    await this.up(n, n.device, !(await this.ours(n.device)));
    this.nets.set(n.id, {
      bridge: n.device,
      Internal: n.internal,
      IPAM: { Config: [{ Subnet: n.pool }] },
      gateway: n.gateway,
      v6: !!n.gateway6,
    });
  }

  /** Whether device `name` exists (it is berth's: a device of that name that is not is a Conflict). */
  private async ours(name: string): Promise<boolean> {
    const existing = (await this.host.links()).find((l) => l.ifname === name);
    if (existing && existing.ifalias !== this.mark)
      throw conflict(`a network device named ${name} exists and is not berth's`);
    return !!existing;
  }

  /** Brings bridge `bridge` of `n` up (idempotent), making the device first when `make`. */
  private async up(n: NetworkSpec, bridge: string, make: boolean): Promise<void> {
    if (make) await this.host.ipBatch([`link add ${bridge} type bridge`, `link set dev ${bridge} alias ${this.mark}`]);
    await this.host.ipQuiet([`addr add ${n.gateway} dev ${bridge}`]);
    if (n.gateway6) await this.host.ipQuiet([`addr add ${n.gateway6} dev ${bridge} nodad`]);
    await this.host.ipBatch([`link set ${bridge} up`]);
    this.host.allowLocalnet(bridge);
    if (!n.isDefault) await this.names.serve(n.id, n.name, n.gateway.replace(/\/\d+$/, ''));
  }

  async deleteNetwork(id: string): Promise<void> {
    this.names.stop(id);
    const n = this.nets.get(id);
    this.nets.delete(id);
    // a bridge another network names too (the same -o com.docker.network.bridge.name) stays
    const shared = !!n && [...this.nets.values()].some((o) => o.bridge === n.bridge);
    if (n && !shared) await this.host.ipQuiet([`link del ${n.bridge}`]);
    await this.apply();
  }

  /** The veth's host end gets a fresh name: `vb<10 hex>`. Nothing is made yet. */
  async createEndpoint(): Promise<{ hostIfname: string }> {
    return { hostIfname: `vb${randomBytes(5).toString('hex')}` };
  }

  /**
   * One process, inside the container's namespace: the pair is made there, its host end sent out
   * to berthd's namespace, the container end configured; then the host end is plugged into the
   * bridge with syscalls (no second process).
   */
  async join(ep: EndpointInfo, sandbox: SandboxSpec): Promise<JoinResult> {
    const n = this.nets.get(ep.networkId);
    if (!n) throw failedPrecondition(`network ${ep.networkId} is down: its bridge is not up`);
    await this.host.ipBatch(
      [
        `link add ${sandbox.ifname} type veth peer name ${ep.hostIfname} netns ${process.pid}`,
        ...interfaceLines(sandbox.ifname, ep.address, ep.mac, sandbox.route, {
          ...(ep.address6 ? { address6: ep.address6, route6: sandbox.route6 ?? null } : {}),
          extra: ep.extraAddresses ?? [],
        }),
      ],
      nsArgOf(sandbox.key),
    );
    this.host.plugIntoBridge(ep.hostIfname, n.bridge, this.mark);
    return { kind: 'configured' };
  }

  async leave(): Promise<void> {}

  /** The veth pair goes (both ends); with the container's namespace gone the kernel removed it already. */
  async deleteEndpoint(ep: EndpointInfo, sandboxGone: boolean): Promise<void> {
    if (sandboxGone || !ep.hostIfname || !this.host.linkExists(ep.hostIfname)) return;
    await this.host.ipQuiet([`link del ${ep.hostIfname}`]);
  }

  // --- the daemon's host state ---------------------------------------------------------------

  /** At daemon start, before any network: the host forwards IPv4. */
  start(): void {
    this.host.enableForwarding();
  }

  /**
   * At daemon start, after the networks and endpoints: links with this daemon's mark that are
   * neither a bridge that is up nor in `keep` (endpoints' host ends) are deleted; the table is rebuilt.
   */
  async reconcile(keep: Iterable<string>): Promise<void> {
    const known = new Set([...[...this.nets.values()].map((n) => n.bridge), ...keep]);
    this.table6 = true; // an `ip6` table an earlier run left goes if no network has IPv6 now
    const stale = (await this.host.links())
      .filter((l) => l.ifalias === this.mark && !known.has(l.ifname))
      .map((l) => `link del ${l.ifname}`);
    if (stale.length) {
      log.info('removing network devices left by an earlier run', { count: stale.length });
      await this.host.ipQuiet(stale);
    }
    await this.apply();
  }

  /**
   * Rewrites the nftables table from the bridges and the published ports, swapped in atomically.
   * One at a time, each reading the state when its turn comes: two concurrent rewrites (parallel
   * `docker rm -f` of publishing containers) could otherwise land out of order, the older one
   * restoring a removed container's DNAT rule.
   */
  apply(): Promise<void> {
    const next = this.applying
      .catch(() => undefined)
      .then(async () => {
        const v6 = [...this.nets.values()].filter((n) => n.v6).map((n) => n.bridge);
        if (v6.length) await this.host.replaceTable(this.table, table6Body(v6), 'ip6');
        else if (this.table6) await this.host.deleteTable(this.table, 'ip6');
        this.table6 = v6.length > 0;
        await this.host.replaceTable(this.table, tableBody([...this.nets.values()], this.ports()));
      });
    this.applying = next;
    return next;
  }

  /** Removes everything of this daemon from the host (tests, uninstall): the table, bridges, veths. */
  async teardown(): Promise<void> {
    await this.host.deleteTable(this.table);
    await this.host.deleteTable(this.table, 'ip6');
    const mine = (await this.host.links()).filter((l) => l.ifalias === this.mark).map((l) => `link del ${l.ifname}`);
    await this.host.ipQuiet(mine);
  }
}
