/**
 * The overlay's fast path: traffic between a container here and one on another host skips the
 * network's bridge. Over the bridge every such packet pays a bridge traversal on each host and,
 * where `br_netfilter` is on (built into Debian's kernel, on by default in every namespace), the
 * host's IP hooks as if routed: conntrack, the nat chains' lookups, the filter `forward` chain.
 * That was a fifth of the overlay's CPU per byte in bench/overlay.sh (src/network/README.md).
 *
 * With tc (clsact, u32 on the destination MAC, mirred):
 * - ingress of the VXLAN `vx-<id>`: per local endpoint, `dst MAC -> redirect to its host veth`;
 * - a shared filter block (index = the network's VNI), bound to the ingress of every local
 *   endpoint's host veth and of the bridge (which keeps the block alive with no endpoint):
 *   per remote endpoint, `dst MAC -> redirect to vx-<id>`. The VXLAN's own fdb still picks the host.
 * Anything else (ARP, broadcast, traffic to the gateway and routed beyond it, published ports,
 * containers on this host) has no filter and crosses the bridge as before; so does an endpoint
 * without a filter (a missing filter costs speed only). IPv4 only (overlay networks are IPv4).
 *
 * A filter's handle is `800::<the address's low 12 bits>` (u32's node id): unique in a subnet of
 * /20 or smaller; in a bigger one an address whose node id is taken goes over the bridge.
 */
import { errorMessage, internal } from '../base/errors.js';
import { log } from '../base/log.js';
import { runCommand } from '../base/proc.js';
import { ipToInt } from './ipam.js';

/** A filter's priority in its chain (one u32 classifier, one node per endpoint). */
const PRIO = 10;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4_RE = /^(\d{1,3}\.){3}\d{1,3}$/;
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** Runs `tc -batch` lines (a line that fails is logged, the others run: `-force`). */
async function tcBatch(lines: string[]): Promise<void> {
  if (!lines.length) return;
  await runCommand('tc', ['-force', '-batch', '-'], { input: `${lines.join('\n')}\n` }).catch((e: unknown) => {
    throw internal(`tc -batch: ${errorMessage(e)}`);
  });
}

/** u32's node id for address `ip` (0: none). */
export const nodeOf = (ip: string): number => (IPV4_RE.test(ip) ? ipToInt(ip) & 0xfff : 0);

/** An endpoint as the fast path knows it: its MAC, and for a local one its host veth. */
export interface PathEntry {
  ip: string;
  mac: string;
  veth?: string;
}

interface Net {
  vxlan: string;
  bridge: string;
  block: number;
  /** by node id: the local endpoints (VXLAN ingress) and the remote ones (the block) */
  local: Map<number, PathEntry>;
  remote: Map<number, PathEntry>;
}

const redirect = (mac: string, dev: string) =>
  `protocol ip prio ${PRIO} u32 match ether dst ${mac} action mirred egress redirect dev ${dev}`;

export class FastPath {
  private readonly nets = new Map<string, Net>();

  /** `exists`: whether a link is there (a local endpoint whose veth went is not put back) */
  constructor(
    private readonly exists: (ifname: string) => boolean,
    private readonly run: (lines: string[]) => Promise<void> = tcBatch,
  ) {}

  /**
   * Network `id` is up: clsact on its VXLAN (what an earlier run left there is flushed: the next
   * `sync` puts the live endpoints back) and on its bridge, bound to block `block`, flushed too.
   */
  async up(id: string, vxlan: string, bridge: string, block: number): Promise<void> {
    this.nets.set(id, { vxlan, bridge, block, local: new Map(), remote: new Map() });
    await this.run([`qdisc del dev ${vxlan} clsact`, `filter del block ${block}`]).catch(() => undefined); // may not be there
    await this.run([
      `qdisc add dev ${vxlan} clsact`,
      `qdisc replace dev ${bridge} ingress_block ${block} clsact`,
    ]).catch((e: unknown) => log.warn('overlay fast path not set up', { vxlan, err: errorMessage(e) }));
  }

  /** Network `id` goes (its devices with it: the kernel drops their qdiscs). */
  down(id: string): void {
    this.nets.delete(id);
  }

  /** A local endpoint joined: its host veth bound to the block, the VXLAN sends to it directly. */
  async join(id: string, e: PathEntry): Promise<void> {
    const n = this.nets.get(id);
    if (!n || !e.veth || !IFNAME_RE.test(e.veth)) return;
    const lines = [`qdisc replace dev ${e.veth} ingress_block ${n.block} clsact`, ...this.localLines(n, [e], false)];
    await this.run(lines).catch((err: unknown) => log.debug('overlay fast path', { err: errorMessage(err) }));
  }

  /** A local endpoint leaves: its filter goes first (its address and MAC may come back on another veth). */
  async leave(id: string, ip: string, mac: string): Promise<void> {
    const n = this.nets.get(id);
    const node = nodeOf(ip);
    const had = n?.local.get(node);
    if (!n || !had || had.mac !== mac) return;
    n.local.delete(node);
    await this.run([
      `filter del dev ${n.vxlan} ingress protocol ip prio ${PRIO} handle 800::${node.toString(16)} u32`,
    ]).catch((err: unknown) => log.debug('overlay fast path', { err: errorMessage(err) }));
  }

  /**
   * The lines that bring network `id`'s filters in line with its endpoints: `remote` (the other
   * hosts', as the VXLAN's peers: exactly those) and `local` (this host's with their host veths,
   * from a snapshot: added when missing, never removed here, as a container may have joined or
   * left since; `leave` removes, and `up` flushes what an earlier run left).
   */
  sync(id: string, local: readonly PathEntry[], remote: readonly PathEntry[]): string[] {
    const n = this.nets.get(id);
    if (!n) return [];
    return [...this.localLines(n, local, false), ...this.remoteLines(n, remote)];
  }

  /** Runs lines made by `sync`. */
  apply(lines: string[]): Promise<void> {
    return this.run(lines);
  }

  private localLines(n: Net, want: readonly PathEntry[], exact: boolean): string[] {
    const out: string[] = [];
    const wanted = new Map<number, PathEntry>();
    for (const e of want) {
      const node = nodeOf(e.ip);
      if (!node || !MAC_RE.test(e.mac) || !e.veth || !IFNAME_RE.test(e.veth) || wanted.has(node)) continue;
      if (!this.exists(e.veth)) continue;
      wanted.set(node, e);
    }
    if (exact)
      for (const [node] of n.local)
        if (!wanted.has(node)) {
          out.push(`filter del dev ${n.vxlan} ingress protocol ip prio ${PRIO} handle 800::${node.toString(16)} u32`);
          n.local.delete(node);
        }
    for (const [node, e] of wanted) {
      const had = n.local.get(node);
      if (had && had.mac === e.mac && had.veth === e.veth) continue;
      out.push(`filter replace dev ${n.vxlan} ingress handle 800::${node.toString(16)} ${redirect(e.mac, e.veth!)}`);
      n.local.set(node, e);
    }
    return out;
  }

  private remoteLines(n: Net, want: readonly PathEntry[]): string[] {
    const out: string[] = [];
    const wanted = new Map<number, PathEntry>();
    for (const e of want) {
      const node = nodeOf(e.ip);
      if (!node || !MAC_RE.test(e.mac) || wanted.has(node)) continue;
      wanted.set(node, e);
    }
    for (const [node] of n.remote)
      if (!wanted.has(node)) {
        out.push(`filter del block ${n.block} protocol ip prio ${PRIO} handle 800::${node.toString(16)} u32`);
        n.remote.delete(node);
      }
    for (const [node, e] of wanted) {
      if (n.remote.get(node)?.mac === e.mac) continue;
      out.push(`filter replace block ${n.block} handle 800::${node.toString(16)} ${redirect(e.mac, n.vxlan)}`);
      n.remote.set(node, e);
    }
    return out;
  }
}
