/**
 * The built-in `overlay` driver's host side, behind the same NetworkDriver interface as `bridge`:
 * per network and host, a Linux bridge (`ov-<id[:12]>`, made by the bridge driver, so it has the
 * network's gateway address, its name server, NAT to the outside, published ports and isolation
 * from the daemon's nftables table) with a kernel VXLAN device (`vx-<id[:12]>`: the network's VNI,
 * `local` = the advertise address, UDP 4789, `nolearning`, `proxy`) as one of its ports.
 * Endpoints are the bridge driver's veth pairs, with the VXLAN's MTU inside the container.
 * The remote endpoints (`setPeers`, from the cluster store's watch) become a forwarding entry
 * (`bridge fdb ... dst <host> self permanent`) and a neighbour entry (`ip neigh ... nud permanent`,
 * answered by the VXLAN's ARP proxy) each: no multicast, no learning.
 */
import { failedPrecondition, internal, invalidArgument, errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runCommand } from '../base/proc.js';
import type {
  EndpointInfo,
  JoinResult,
  NetworkDriver,
  NetworkRestore,
  NetworkSpec,
  SandboxSpec,
} from '../plugins/interfaces.js';
import type { BridgeDriver } from './bridge.js';
import type { NetHost } from './host.js';
import { nsArgOf } from './sandbox.js';
import { FastPath, type PathEntry } from './overlay-fastpath.js';

/** dockerd's option naming an overlay network's VNI (shown in `network inspect`). */
export const VNI_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';
export const MTU_OPTION = 'com.docker.network.driver.mtu';
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';
/** VXLAN's 50 bytes of headers inside a 1500-byte underlay */
const DEFAULT_MTU = 1450;
export const VXLAN_PORT = 4789;

/** A remote endpoint as this host's VXLAN must know it. */
export interface Peer {
  ip: string;
  mac: string;
  /** the address of the host it runs on (its `--cluster-advertise`) */
  vtep: string;
}

const IPV4_RE = /^(\d{1,3}\.){3}\d{1,3}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A VNI from the record's options (1..16777215). */
export function vniOf(options: Record<string, string>): number {
  const v = Number(options[VNI_OPTION]);
  if (!Number.isInteger(v) || v < 1 || v > 0xffffff) throw invalidArgument(`invalid VXLAN id ${options[VNI_OPTION]}`);
  return v;
}

/**
 * The MTU of the network's interfaces (`-o com.docker.network.driver.mtu`, 576..9000); by default
 * the underlay's (the MTU of the interface with the advertise address) less VXLAN's 50 bytes.
 */
export function mtuOf(options: Record<string, string>, underlay = DEFAULT_MTU + 50): number {
  const asked = options[MTU_OPTION];
  if (asked === undefined || asked === '') return Math.min(9000, Math.max(576, underlay - 50));
  const v = Number(asked);
  if (!Number.isInteger(v) || v < 576 || v > 9000) throw invalidArgument(`invalid MTU ${asked}: 576 to 9000`);
  return v;
}

/** The host devices of overlay network `id`. */
export const devicesOf = (id: string) => ({ bridge: `ov-${id.slice(0, 12)}`, vxlan: `vx-${id.slice(0, 12)}` });

const exec = promisify(execFile);

/** A command's stdout (10 s deadline). */
async function runCapture(cmd: string, args: string[]): Promise<string> {
  return (await exec(cmd, args, { timeout: 10_000 })).stdout || '[]';
}

/** Words a `bridge` command line may hold (as host.ts's `ip` lines): names, addresses, MACs. */
const LINE_RE = /^[A-Za-z0-9._:/@-]+( [A-Za-z0-9._:/@-]+)*$/;

/** Runs `bridge -batch` lines; a line with anything else is dropped (its values came from the cluster store). */
async function bridgeBatch(all: string[]): Promise<void> {
  const lines = all.filter((l) => LINE_RE.test(l));
  if (!lines.length) return;
  await runCommand('bridge', ['-force', '-batch', '-'], { input: `${lines.join('\n')}\n` }).catch((e: unknown) => {
    throw internal(`bridge -batch: ${errorMessage(e)}`);
  });
}

export class OverlayDriver implements NetworkDriver {
  /** the networks that are up on this host: their VXLAN device and MTU */
  private readonly nets = new Map<string, { vxlan: string; mtu: number }>();
  /** what each VXLAN has been told, by network, by address */
  private readonly programmed = new Map<string, Map<string, Peer>>();
  private queue: Promise<void> = Promise.resolve();
  /** createNetwork calls under way, by network */
  private readonly making = new Map<string, Promise<void>>();
  /** cross-host traffic past the bridge (overlay-fastpath.ts) */
  private readonly fast: FastPath;
  /** the underlay's MTU (read once) */
  private underlay: number | undefined;

  constructor(
    private readonly bridge: BridgeDriver,
    private readonly advertise: string,
    private readonly host: NetHost,
    fast?: FastPath,
  ) {
    // BERTH_OVERLAY_FASTPATH=0: every packet over the bridge (bench/overlay.sh compares the two)
    const off = process.env['BERTH_OVERLAY_FASTPATH'] === '0';
    this.fast = fast ?? new FastPath((name) => host.linkExists(name), off ? async () => undefined : undefined);
  }

  isUp(id: string): boolean {
    return this.nets.has(id);
  }

  /** The VXLAN devices that are up (kept by the bridge driver's reconciliation). */
  devices(): string[] {
    return [...this.nets.values()].map((n) => n.vxlan);
  }

  /**
   * Brings the network up on this host (idempotent: devices that are there and berth's are kept).
   * Calls for one network run one after the other (a create and the watch's event race otherwise).
   */
  createNetwork(n: NetworkSpec): Promise<{ device: string }> {
    return this.serial(n.id, () => this.make(n));
  }

  /** Runs `f` after every earlier create or delete of network `id` finished. */
  private serial<T>(id: string, f: () => Promise<T>): Promise<T> {
    const prev = this.making.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(f);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.making.set(id, tail);
    void tail.then(() => {
      if (this.making.get(id) === tail) this.making.delete(id);
    });
    return next;
  }

  /** The networks that are up on this host. */
  upIds(): string[] {
    return [...this.nets.keys()];
  }

  private async make(n: NetworkSpec): Promise<{ device: string }> {
    if (this.nets.has(n.id)) return { device: devicesOf(n.id).bridge };
    const vni = vniOf(n.options);
    const mtu = mtuOf(n.options, await this.underlayMtu());
    const { bridge, vxlan } = devicesOf(n.id);
    await this.bridge.createNetwork({ ...n, options: { [BRIDGE_NAME_OPTION]: bridge }, isDefault: false });
    try {
      const existing = (await this.host.links()).find((l) => l.ifname === vxlan);
      if (existing && existing.ifalias !== this.bridge.mark)
        throw invalidArgument(`a network device named ${vxlan} exists and is not berth's`);
      if (!existing) {
        // The kernel's defaults stay (README "What the overlay still costs per byte": each was
        // measured): `udpcsum` (free on veths, where the checksum stays partial; on a NIC it lets
        // the receiver validate the inner checksum by conversion) and GRO on (no work for the ~58 KB
        // GSO packets of veths; on a NIC it merges the decapsulated segments). No `srcport` range:
        // the source port hashes the inner flow, so the underlay's ECMP and RSS spread flows.
        await this.host.ipBatch([
          `link add ${vxlan} mtu ${mtu} type vxlan id ${vni} local ${this.advertise} dstport ${VXLAN_PORT} nolearning proxy`,
          `link set dev ${vxlan} alias ${this.bridge.mark}`,
        ]);
      }
      await this.host.ipBatch([`link set ${vxlan} master ${bridge}`, `link set ${vxlan} up`]);
      this.nets.set(n.id, { vxlan, mtu });
      if (!this.programmed.has(n.id)) this.programmed.set(n.id, await this.adopt(vxlan));
      await this.fast.up(n.id, vxlan, bridge, vni);
    } catch (e) {
      await this.host.ipQuiet([`link del ${vxlan}`]);
      await this.bridge.deleteNetwork(n.id);
      this.nets.delete(n.id);
      throw e;
    }
    return { device: bridge };
  }

  restoreNetwork(n: NetworkRestore): Promise<void> {
    return this.createNetwork(n).then(() => undefined);
  }

  /**
   * The entries a VXLAN device already has (a daemon restarted while its containers ran): known
   * as programmed, so the first `setPeers` removes only the stale ones and running traffic goes on.
   */
  private async adopt(vxlan: string): Promise<Map<string, Peer>> {
    const out = new Map<string, Peer>();
    try {
      const neigh = JSON.parse(await runCapture('ip', ['-j', 'neigh', 'show', 'dev', vxlan])) as Array<{
        dst?: string;
        lladdr?: string;
      }>;
      const fdb = JSON.parse(await runCapture('bridge', ['-j', 'fdb', 'show', 'dev', vxlan])) as Array<{
        mac?: string;
        dst?: string;
      }>;
      for (const n of neigh) {
        const f = fdb.find((x) => x.mac === n.lladdr && x.dst);
        if (n.dst && n.lladdr && f?.dst) out.set(n.dst, { ip: n.dst, mac: n.lladdr, vtep: f.dst });
      }
    } catch (e) {
      log.debug("overlay: reading a VXLAN device's entries", { vxlan, err: errorMessage(e) });
    }
    return out;
  }

  deleteNetwork(id: string): Promise<void> {
    return this.serial(id, () => this.unmake(id));
  }

  private async unmake(id: string): Promise<void> {
    const n = this.nets.get(id);
    this.nets.delete(id);
    this.programmed.delete(id);
    this.fast.down(id);
    await this.host.ipQuiet([`link del ${n?.vxlan ?? devicesOf(id).vxlan}`]);
    await this.bridge.deleteNetwork(id);
  }

  createEndpoint(): Promise<{ hostIfname: string }> {
    return this.bridge.createEndpoint();
  }

  /** The bridge driver's veth pair; the container's end gets the VXLAN's MTU. */
  async join(ep: EndpointInfo, sandbox: SandboxSpec): Promise<JoinResult> {
    const n = this.nets.get(ep.networkId);
    if (!n) throw failedPrecondition(`overlay network ${ep.networkId} is not up on this host`);
    const r = await this.bridge.join(ep, sandbox);
    await this.host.ipBatch([`link set ${sandbox.ifname} mtu ${n.mtu}`], nsArgOf(sandbox.key));
    await this.fast.join(ep.networkId, { ip: ep.address.replace(/\/\d+$/, ''), mac: ep.mac, veth: ep.hostIfname });
    return r;
  }

  async leave(ep: EndpointInfo): Promise<void> {
    await this.fast.leave(ep.networkId, ep.address.replace(/\/\d+$/, ''), ep.mac);
    return this.bridge.leave();
  }

  /** The MTU of the interface with the advertise address (1500 when it cannot be read). */
  private async underlayMtu(): Promise<number> {
    if (this.underlay === undefined) {
      try {
        const addrs = JSON.parse(await runCapture('ip', ['-j', 'addr', 'show'])) as Array<{
          mtu?: number;
          addr_info?: Array<{ local?: string }>;
        }>;
        const dev = addrs.find((a) => a.addr_info?.some((i) => i.local === this.advertise));
        this.underlay = typeof dev?.mtu === 'number' && dev.mtu >= 626 ? dev.mtu : DEFAULT_MTU + 50;
      } catch {
        this.underlay = DEFAULT_MTU + 50;
      }
    }
    return this.underlay;
  }

  deleteEndpoint(ep: EndpointInfo, sandboxGone: boolean): Promise<void> {
    return this.bridge.deleteEndpoint(ep, sandboxGone);
  }

  /**
   * Makes network `id`'s VXLAN know exactly `peers` (the endpoints on other hosts): entries of
   * gone or moved endpoints are deleted, new ones added. One change at a time, in call order.
   */
  setPeers(id: string, peers: readonly Peer[], local: readonly PathEntry[] = []): Promise<void> {
    const next = this.queue
      .catch(() => undefined)
      .then(async () => {
        const n = this.nets.get(id);
        const had = this.programmed.get(id);
        if (!n || !had) return;
        const want = new Map(
          peers.filter((p) => IPV4_RE.test(p.ip) && MAC_RE.test(p.mac) && IPV4_RE.test(p.vtep)).map((p) => [p.ip, p]),
        );
        const ipLines: string[] = [];
        const fdbLines: string[] = [];
        for (const [ip, p] of had) {
          const w = want.get(ip);
          if (w && w.mac === p.mac && w.vtep === p.vtep) continue;
          ipLines.push(`neigh del ${ip} dev ${n.vxlan}`);
          fdbLines.push(`fdb del ${p.mac} dev ${n.vxlan} dst ${p.vtep} self`);
          had.delete(ip);
        }
        for (const [ip, p] of want) {
          if (had.has(ip)) continue;
          fdbLines.push(`fdb replace ${p.mac} dev ${n.vxlan} dst ${p.vtep} self permanent`);
          ipLines.push(`neigh replace ${ip} lladdr ${p.mac} dev ${n.vxlan} nud permanent`);
          had.set(ip, p);
        }
        if (ipLines.length) log.debug('overlay peers', { network: id.slice(0, 12), changes: ipLines });
        await bridgeBatch(fdbLines);
        if (ipLines.length) await this.host.ipQuiet(ipLines);
        // the fast path's filters after the fdb: a remote MAC is sent to the VXLAN once it knows where
        const tc = this.fast.sync(id, local, [...want.values()]);
        if (tc.length)
          await this.fast.apply(tc).catch((e: unknown) => log.debug('overlay fast path', { err: errorMessage(e) }));
      });
    this.queue = next;
    return next;
  }
}
