/**
 * What networking changes on the host, through iproute2 and nftables (see README for why these):
 * `ip -batch` (one process for many link/address commands, run inside a container's network
 * namespace through nsenter), and one nftables table per daemon replaced atomically by `nft -f`.
 * Everything berth creates carries its daemon's mark (a link alias, the table name), which is how
 * reconciliation finds leftovers without touching anything else on the host.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { internal } from '../base/errors.js';

const run = promisify(execFile);

function feed(cmd: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(internal(`${cmd} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
    p.stdin.on('error', () => undefined); // a command that does not read its input (or died): its exit code tells
    p.stdin.end(input);
  });
}

/**
 * Runs `ip` commands (one per line, without the leading `ip`) in one process; inside network
 * namespace `ns` when given (`ip -n`: a name under /run/netns — a relative path from there such as
 * `../../proc/<pid>/ns/net` enters a process's namespace without nsenter: one exec, not two).
 */
export function ipBatch(lines: string[], ns?: string): Promise<void> {
  const text = `${lines.join('\n')}\n`;
  if (!ns) return feed('ip', ['-batch', '-'], text);
  mkdirSync('/run/netns', { recursive: true });
  return feed('ip', ['-n', ns, '-batch', '-'], text);
}

/** A named network namespace (/run/netns/<name>) with its loopback up, for containers that can be checkpointed. */
export async function netnsAdd(name: string): Promise<void> {
  await feed('ip', ['netns', 'add', name], '');
  await ipBatch(['link set lo up'], name);
}

export async function netnsDel(name: string): Promise<void> {
  await feed('ip', ['netns', 'del', name], '').catch(() => undefined);
}

/** Like ipBatch, each command on its own: failures ignored (cleanup of what may be gone). */
export async function ipQuiet(lines: string[]): Promise<void> {
  await feed('ip', ['-force', '-batch', '-'], `${lines.join('\n')}\n`).catch(() => undefined);
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

/** Replaces the nftables table `name` (family ip) by `body` in one transaction. */
export function replaceTable(name: string, body: string): Promise<void> {
  return feed('nft', ['-f', '-'], `table ip ${name}\ndelete table ip ${name}\ntable ip ${name} {\n${body}\n}\n`);
}

export async function deleteTable(name: string): Promise<void> {
  await feed('nft', ['-f', '-'], `table ip ${name}\ndelete table ip ${name}\n`).catch(() => undefined);
}
