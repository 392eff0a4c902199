/**
 * What networking changes on the host, through iproute2 and nftables (see README for why these):
 * `ip -batch` (one process for many link/address commands, run inside a container's network
 * namespace through nsenter), and one nftables table per daemon replaced atomically by `nft -f`.
 * Everything berth creates carries its daemon's mark (a link alias, the table name), which is how
 * reconciliation finds leftovers without touching anything else on the host.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { bridgeAddPort, linkUp } from '../base/syscalls.js';
import { errorMessage, internal, invalidArgument } from '../base/errors.js';
import { runCommand } from '../base/proc.js';
import { IFNAME_RE } from './ipam.js';

const run = promisify(execFile);

/** Runs `cmd` with `input` on its stdin; a failure names the command. */
function feed(cmd: string, args: string[], input: string): Promise<void> {
  return runCommand(cmd, args, { input }).catch((e: unknown) => {
    throw internal(`${cmd} ${args.join(' ')}: ${errorMessage(e)}`);
  });
}

/**
 * Runs `ip` commands (one per line, without the leading `ip`) in one process; inside network
 * namespace `ns` when given (`ip -n`: a name under /run/netns — a relative path from there such as
 * `../../proc/<pid>/ns/net` enters a process's namespace without nsenter: one exec, not two).
 */
/** Words an `ip` command line may hold: names, addresses, CIDRs, MACs, marks (`berth:<id>`), relative netns paths. */
const IP_LINE_RE = /^[A-Za-z0-9._:/@-]+( [A-Za-z0-9._:/@-]+)*$/;

/**
 * Every line goes to `ip -batch` as one command: a line carrying anything else (a newline would
 * start a second command chosen by whoever wrote a name) is refused before ip runs.
 */
function batchText(lines: string[]): string {
  for (const l of lines)
    if (!IP_LINE_RE.test(l))
      throw invalidArgument(`refusing to run an ip command with unexpected characters: ${JSON.stringify(l)}`);
  return `${lines.join('\n')}\n`;
}

export async function ipBatch(lines: string[], ns?: string): Promise<void> {
  const text = batchText(lines);
  if (!ns) return feed('ip', ['-batch', '-'], text);
  mkdirSync('/run/netns', { recursive: true });
  return feed('ip', ['-n', ns, '-batch', '-'], text);
}

/** A named network namespace (/run/netns/<name>) with its loopback up, for containers that can be checkpointed. */
/** `ip netns add`, then lo up in it (`loUp` false: left to the caller, e.g. CNI's loopback plugin: one run less). */
export async function netnsAdd(name: string, loUp = true): Promise<void> {
  await feed('ip', ['netns', 'add', name], '');
  if (loUp) await ipBatch(['link set lo up'], name);
}

export async function netnsDel(name: string): Promise<void> {
  await feed('ip', ['netns', 'del', name], '').catch(() => undefined);
}

/** Like ipBatch, each command on its own: failures ignored (cleanup of what may be gone). */
export async function ipQuiet(lines: string[]): Promise<void> {
  const safe = lines.filter((l) => IP_LINE_RE.test(l));
  if (safe.length) await feed('ip', ['-force', '-batch', '-'], batchText(safe)).catch(() => undefined);
}

export interface Link {
  ifname: string;
  ifalias?: string;
  link_type?: string;
}

export async function links(): Promise<Link[]> {
  const { stdout } = await run('ip', ['-j', 'link', 'show']);
  return JSON.parse(stdout || '[]') as Link[];
}

/** Lets traffic DNAT'd from 127.0.0.1 leave through this bridge (published ports on localhost). */
export function allowLocalnet(bridge: string): void {
  if (!IFNAME_RE.test(bridge)) return; // never a path out of conf/
  try {
    writeFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1');
  } catch {
    /* the bridge went away */
  }
}

export function enableForwarding(): void {
  try {
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  } catch {
    /* read-only /proc/sys: forwarding stays as the host has it */
  }
}

/** Replaces the nftables table `name` (family `ip`, or `ip6`) by `body` in one transaction. */
export function replaceTable(name: string, body: string, family: 'ip' | 'ip6' = 'ip'): Promise<void> {
  const f = family;
  return feed('nft', ['-f', '-'], `table ${f} ${name}\ndelete table ${f} ${name}\ntable ${f} ${name} {\n${body}\n}\n`);
}

export async function deleteTable(name: string, family: 'ip' | 'ip6' = 'ip'): Promise<void> {
  await feed('nft', ['-f', '-'], `table ${family} ${name}\ndelete table ${family} ${name}\n`).catch(() => undefined);
}

/** The host end of a veth pair: alias (berth's mark), bridge port with hairpin, up. */
export function plugIntoBridge(veth: string, bridge: string, mark: string): void {
  const sys = `/sys/class/net/${veth}`;
  writeFileSync(`${sys}/ifalias`, mark);
  bridgeAddPort(bridge, Number(readFileSync(`${sys}/ifindex`, 'utf8')));
  writeFileSync(`${sys}/brport/hairpin_mode`, '1');
  linkUp(veth);
}

/** Whether nothing on the host has `port` bound (a listening socket is tried and closed). */
export function portFree(proto: 'tcp' | 'udp', hostIp: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (proto === 'udp') {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, hostIp, () => s.close(() => resolve(true)));
      return;
    }
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, hostIp, () => srv.close(() => resolve(true)));
  });
}

/** Whether a network interface of that name exists in berthd's namespace. */
export function linkExists(name: string): boolean {
  return IFNAME_RE.test(name) && existsSync(`/sys/class/net/${name}`);
}

/**
 * The host operations the bridge driver and the manager use, as one object, so unit tests can
 * give them a recording fake (DESIGN.md: host access is injected). `systemNetHost` is the real one.
 */
export interface NetHost {
  ipBatch(lines: string[], ns?: string): Promise<void>;
  ipQuiet(lines: string[]): Promise<void>;
  links(): Promise<Link[]>;
  linkExists(name: string): boolean;
  plugIntoBridge(veth: string, bridge: string, mark: string): void;
  allowLocalnet(bridge: string): void;
  enableForwarding(): void;
  replaceTable(name: string, body: string, family?: 'ip' | 'ip6'): Promise<void>;
  deleteTable(name: string, family?: 'ip' | 'ip6'): Promise<void>;
  portFree(proto: 'tcp' | 'udp', hostIp: string, port: number): Promise<boolean>;
}

export const systemNetHost: NetHost = {
  ipBatch,
  ipQuiet,
  links,
  linkExists,
  plugIntoBridge,
  allowLocalnet,
  enableForwarding,
  replaceTable,
  deleteTable,
  portFree,
};
