/**
 * A pod's namespaces without a process to hold them (CRI-O's `drop_infra_ctr` + `pinns`): a new
 * network namespace (lo up) and IPC namespace, each kept alive by a bind mount of its nsfs file
 * (the network one at `/run/netns/<name>`, where `ip netns` and CNI plugins look), made by one
 * util-linux `unshare --net=FILE --ipc=FILE` run that then brings lo up inside. The pod's containers
 * join them by path; removing the mounts (and the containers' processes) ends the namespaces.
 *
 * Contract: `pin` is all or nothing (a failure removes what it made) and has a deadline; `unpin`
 * is idempotent and removes only files of its own kind (under /run/netns/ with the pod prefix, and
 * IPC files under the directory given at construction).
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errorMessage, internal, invalidArgument } from '../base/errors.js';
import { runCommand } from '../base/proc.js';
import { MNT_DETACH, umountAsync } from '../base/syscalls.js';
import { netnsDel } from '../network/host.js';

export const POD_NETNS_DIR = '/run/netns';
export const POD_NETNS_PREFIX = 'berth-cri-';
const PIN_TIMEOUT_MS = 30_000;
const NAME_RE = new RegExp(`^${POD_NETNS_PREFIX}[0-9a-f]{16}$`);

export interface PinnedNs {
  /** the network namespace's bind mount, /run/netns/berth-cri-<hex> */
  net: string;
  /** the IPC namespace's bind mount, <ipcDir>/berth-cri-<hex>.ipc; absent when the pod uses the host's */
  ipc?: string;
}

export class PodNamespaces {
  /** `ipcDir`: where IPC namespaces are pinned (the daemon's exec root's `pods/`) */
  constructor(private readonly ipcDir: string) {}

  /** The paths a pod named `name` (berth-cri-<16 hex>) pins its namespaces at. */
  pathsOf(name: string, ipc: boolean): PinnedNs {
    if (!NAME_RE.test(name)) throw invalidArgument(`${name} is not a pod namespace name`);
    return { net: join(POD_NETNS_DIR, name), ...(ipc ? { ipc: join(this.ipcDir, `${name}.ipc`) } : {}) };
  }

  /** Makes and pins the namespaces at `p` (files that must not exist yet), lo up in the network one. */
  async pin(p: PinnedNs): Promise<void> {
    this.check(p);
    await Promise.all([
      fsp.mkdir(POD_NETNS_DIR, { recursive: true, mode: 0o755 }),
      p.ipc ? fsp.mkdir(this.ipcDir, { recursive: true, mode: 0o700 }) : undefined,
    ]);
    const made: string[] = [];
    try {
      // unshare(1) binds the new namespaces onto existing files (as `ip netns add` makes its own)
      for (const f of [p.net, p.ipc]) {
        if (!f) continue;
        await (await fsp.open(f, 'wx', 0o444)).close();
        made.push(f);
      }
      const args = [`--net=${p.net}`, ...(p.ipc ? [`--ipc=${p.ipc}`] : []), '--', 'ip', 'link', 'set', 'lo', 'up'];
      await runCommand('unshare', args, { timeoutMs: PIN_TIMEOUT_MS, group: true });
    } catch (e) {
      await this.unpinFiles(made);
      throw internal(`pinning the pod's namespaces at ${p.net}: ${errorMessage(e)}`);
    }
  }

  /** Removes the pins (the namespaces end with their last process). Idempotent. */
  async unpin(p: PinnedNs): Promise<void> {
    this.check(p);
    await this.unpinFiles([p.net, ...(p.ipc ? [p.ipc] : [])]);
  }

  private async unpinFiles(files: string[]): Promise<void> {
    for (const f of files) {
      if (dirname(f) === POD_NETNS_DIR) {
        await netnsDel(basename(f)); // umount + unlink, quiet when gone
        continue;
      }
      await umountAsync(f, MNT_DETACH).catch(() => undefined); // not mounted (a failed pin, or gone)
      await fsp.rm(f, { force: true });
    }
  }

  private check(p: PinnedNs): void {
    const name = basename(p.net);
    if (p.net !== join(POD_NETNS_DIR, name) || !NAME_RE.test(name))
      throw invalidArgument(`${p.net} is not a pod network namespace path`);
    if (p.ipc !== undefined && p.ipc !== join(this.ipcDir, `${name}.ipc`))
      throw invalidArgument(`${p.ipc} is not the pod's IPC namespace path`);
  }
}
