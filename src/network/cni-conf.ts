/**
 * CNI network configuration (containernetworking/cni SPEC.md, libcni's conf files): the network
 * pods get is the first conf file of a conf dir in lexical order, its plugins are executables found
 * in the bin dirs; containerd's loopback network; and berth's default conflist.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { failedPrecondition } from '../base/errors.js';
import type { JsonObject } from '../base/json.js';
import { parseConfList, type CniConfList } from '../spec/cni.js';

const CONF_EXTENSIONS = ['.conf', '.conflist', '.json']; // libcni ConfFiles

/** containerd's loopback network (go-cni `WithLoNetwork`). */
export const LOOPBACK: CniConfList = parseConfList(
  JSON.stringify({ cniVersion: '0.3.1', name: 'cni-loopback', plugins: [{ type: 'loopback' }] }),
  'loopback network',
);

/** Whether a cniVersion is `min` or later. */
export const versionAtLeast = (v: string, min: string): boolean => {
  const [a, b] = [v, min].map((x) => x.split('.').map(Number));
  for (let i = 0; i < 3; i++) if ((a![i] ?? 0) !== (b![i] ?? 0)) return (a![i] ?? 0) > (b![i] ?? 0);
  return true;
};

/** The network configuration pods get now: the first conf file of `dir` in lexical order. */
export async function loadNetwork(dir: string): Promise<CniConfList> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    throw failedPrecondition(`no CNI network config in ${dir}: ${(e as { code?: string }).code ?? e}`);
  }
  const first = names.filter((n) => CONF_EXTENSIONS.some((x) => n.endsWith(x))).sort()[0];
  if (first === undefined) throw failedPrecondition(`no CNI network config in ${dir}`);
  const file = join(dir, first);
  try {
    return parseConfList(await fsp.readFile(file, 'utf8'), file);
  } catch (e) {
    throw failedPrecondition(`CNI network config ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

/** Each plugin's executable, looked up in the bin dirs in order (libcni FindInPath). */
export async function pluginPaths(net: CniConfList, binDirs: string[]): Promise<string[]> {
  return Promise.all(
    net.plugins.map(async (pl) => {
      for (const dir of binDirs) {
        const path = join(dir, pl.type);
        try {
          const st = await fsp.stat(path);
          if (st.isFile() && st.mode & 0o111) return path;
        } catch {
          // not in this dir
        }
      }
      throw failedPrecondition(
        `CNI network ${net.name}: plugin ${pl.type} not found in ${binDirs.join(':') || '(no bin dirs)'}`,
      );
    }),
  );
}

/** berth's default pod network: the bridge `berth-cni0`, its gateway, masquerade, hostPorts. */
export const DEFAULT_NETWORK_NAME = 'berth';
export const DEFAULT_SUBNET = '10.86.0.0/16';
export const DEFAULT_CONFLIST_FILE = '10-berth.conflist';

export function defaultConflist(): JsonObject {
  return {
    cniVersion: '1.0.0',
    name: DEFAULT_NETWORK_NAME,
    plugins: [
      {
        type: 'bridge',
        bridge: 'berth-cni0',
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: DEFAULT_SUBNET, gateway: '10.86.0.1' }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

/**
 * Writes berth's default conflist into `dir` (made if missing) unless a file of that name is there;
 * answers its path. Called only when the daemon is told to: a conf dir is the host's to manage.
 */
export async function writeDefaultConflist(dir: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, DEFAULT_CONFLIST_FILE);
  try {
    await fsp.writeFile(file, JSON.stringify(defaultConflist(), null, 2) + '\n', { flag: 'wx', mode: 0o644 });
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
  }
  return file;
}
