/**
 * The daemon's nftables table, rendered from the state (pure): `prerouting`/`output` jump to
 * `publish` for local destinations (one DNAT rule per published port); `postrouting`
 * masquerades traffic leaving a non-internal network, traffic DNAT'd from localhost and hairpin
 * traffic; `forward` drops traffic between two networks and in or out of internal ones.
 */
import type { NetworkRecord, PortBinding } from './records.js';
import { IFNAME_RE } from './ipam.js';

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const CIDR_RE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\/\d{1,2}$/;
const isPort = (p: unknown): boolean => typeof p === 'number' && Number.isInteger(p) && p > 0 && p < 65536;

/** What the table needs of a bridge network (a record has it). */
export type TableNetwork = Pick<NetworkRecord, 'bridge' | 'Internal'> & { IPAM: { Config: Array<{ Subnet: string }> } };

/**
 * The `ip6` table's body for the bridges of networks with IPv6 (`bridges`, names checked): IPv6
 * traffic stays inside its network (berth has no IPv6 NAT; a host that forwards IPv6 would
 * otherwise route between networks, and out of internal ones).
 */
export function table6Body(bridges: readonly string[]): string {
  const ok = bridges.filter((b) => IFNAME_RE.test(b));
  return [
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...ok.flatMap((b) => [`    iifname "${b}" oifname != "${b}" drop`, `    oifname "${b}" iifname != "${b}" drop`]),
    '  }',
  ].join('\n');
}

/** The table's body for bridge networks `nets` and published `ports`. */
export function tableBody(allNets: readonly TableNetwork[], allPorts: readonly PortBinding[]): string {
  // every value written into the script is checked here, whatever its record says: a record with a
  // value that could leave its string or rule (an older berth stored the bridge name as given) is left out
  const nets = allNets.filter((n) => IFNAME_RE.test(n.bridge) && CIDR_RE.test(n.IPAM.Config[0]?.Subnet ?? ''));
  const ports = allPorts.filter(
    (b) =>
      IPV4_RE.test(b.hostIp) &&
      IPV4_RE.test(b.containerIp) &&
      (b.proto === 'tcp' || b.proto === 'udp') &&
      isPort(b.hostPort) &&
      isPort(b.containerPort),
  );
  const bridges = nets.map((n) => `"${n.bridge}"`);
  const dnat = ports.map(
    (b) =>
      `    ${b.hostIp === '0.0.0.0' ? '' : `ip daddr ${b.hostIp} `}` +
      `${b.proto} dport ${b.hostPort} dnat to ${b.containerIp}:${b.containerPort}`,
  );
  const post: string[] = [];
  const fwd: string[] = [];
  for (const n of nets) {
    const subnet = n.IPAM.Config[0]!.Subnet;
    // a TCP connection whose first packet seen is not a SYN was picked up mid-stream — a restored
    // (migrated) one, whose peer knows the container's own address: it keeps that address
    if (!n.Internal)
      post.push(
        `    ip saddr ${subnet} oifname != "${n.bridge}" tcp flags & syn == 0 return`,
        `    ip saddr ${subnet} oifname != "${n.bridge}" masquerade`,
      );
    post.push(
      `    oifname "${n.bridge}" ip saddr 127.0.0.0/8 masquerade`,
      `    oifname "${n.bridge}" ip saddr ${subnet} ct status dnat masquerade`,
    );
    const others = bridges.filter((b) => b !== `"${n.bridge}"`);
    if (n.Internal)
      fwd.push(
        `    iifname "${n.bridge}" oifname != "${n.bridge}" drop`,
        `    oifname "${n.bridge}" iifname != "${n.bridge}" drop`,
      );
    if (others.length) fwd.push(`    iifname "${n.bridge}" oifname { ${others.join(', ')} } drop`);
  }
  return [
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    fib daddr type local jump publish',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    fib daddr type local jump publish',
    '  }',
    '  chain publish {',
    ...dnat,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...post,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...fwd,
    '  }',
  ].join('\n');
}
