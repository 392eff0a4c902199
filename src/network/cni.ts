/**
 * Pod networking through CNI, as containerd's CRI plugin and CRI-O do it (containernetworking/cni
 * SPEC.md and CONVENTIONS.md): the network is the first configuration file of a conf dir, in lexical
 * order; its plugins are executables found in the bin dirs, run one after the other with the
 * `CNI_*` environment and their configuration on stdin. A pod also gets its loopback up, through the
 * `loopback` plugin as a network of its own (`cni-loopback`, as containerd's go-cni does).
 *
 * Contract:
 * - `setUp` is all or nothing: if a plugin fails, every plugin of the list is DEL'd (reverse order,
 *   SPEC "Network Configuration List Error Handling") and the cache record removed before the error
 *   is thrown. What stays is what plugins make per network, not per pod (the bridge device).
 * - `tearDown` is idempotent and runs with what the ADD ran with (the cached conflist, arguments and
 *   result), whatever the conf dir says now; a network namespace that is gone is passed as an empty
 *   `CNI_NETNS` (SPEC DEL: the plugin cleans up what it can). A failed DEL keeps the cache record, so
 *   a retry DELs the same way.
 * - Calls for one container id run one at a time (SPEC: "must not invoke parallel operations for
 *   the same container"); different containers run in parallel.
 * - Every plugin run has a deadline; on expiry the plugin and its children (its process group) are
 *   killed and the call fails with Unavailable.
 * - The cache dir holds one record per (container id, interface), root only (0700 dir, 0600 files).
 */
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { BerthError, failedPrecondition, invalidArgument, isBerthError, type ErrorCode } from '../base/errors.js';
import type { JsonObject } from '../base/json.js';
import { CommandError, runCommand } from '../base/proc.js';
import { exists } from '../base/fs.js';
import {
  CNI_NAME_RE,
  parseCacheRecord,
  parseConfList,
  parseErrorBody,
  parsePortMappings,
  parseResult,
  type CniCacheRecord,
  type CniConfList,
  type CniInterface,
  type CniIpConfig,
  type CniPortMapping,
  type CniPluginConf,
  type CniResult,
} from '../spec/cni.js';

export type { CniPortMapping } from '../spec/cni.js';

export interface CniOptions {
  /** where the network configuration lies (`/etc/cni/net.d`) */
  confDir: string;
  /** where plugins are looked up, in order (`CNI_PATH`); Debian's are in /usr/lib/cni */
  binDirs: string[];
  /** berth's records of ADDs not yet DEL'd (`/var/lib/berth/cni`) */
  cacheDir: string;
  /** each plugin run's deadline (default 60 s) */
  timeoutMs?: number;
}

export interface CniPod {
  /** the sandbox id (SPEC: alphanumeric first, then alphanumerics, `_`, `.`, `-`) */
  containerId: string;
  /** the pod's network namespace (a bind mount under /run/netns, or /proc/<pid>/ns/net) */
  netnsPath: string;
  /** the interface in the pod (default `eth0`) */
  ifName?: string;
  /** hostPort mappings (CONVENTIONS.md `portMappings`), for plugins declaring that capability */
  portMappings?: CniPortMapping[];
  /** CNI_ARGS, e.g. K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID */
  args?: Record<string, string>;
  /**
   * false: the caller brought the pod's `lo` up when it made the namespace, and no `loopback`
   * plugin runs at ADD or DEL (default true: containerd's go-cni way)
   */
  loopback?: boolean;
}

export interface CniAttachment {
  /** the network's name (the conflist's `name`) */
  network: string;
  ips: CniIpConfig[];
  interfaces: CniInterface[];
  routes: CniResult['routes'];
  dns: CniResult['dns'];
}

const DEFAULT_TIMEOUT_MS = 60_000;
/** a plugin's stdout beyond this is not a result */
const MAX_OUTPUT = 1 << 20;
const NSFS_MAGIC = 0x6e736673;
const CONF_EXTENSIONS = ['.conf', '.conflist', '.json']; // libcni ConfFiles
const IFNAME_RE = /^[^\s/:]{1,15}$/; // SPEC: < 16 characters, no `/`, `:` or white space
const ARG_KEY_RE = /^[A-Za-z0-9_]+$/;
const ARG_VALUE_RE = /^[^;=\s]*$/;

/** containerd's loopback network (go-cni `WithLoNetwork`). */
const LOOPBACK: CniConfList = parseConfList(
  JSON.stringify({ cniVersion: '0.3.1', name: 'cni-loopback', plugins: [{ type: 'loopback' }] }),
  'loopback network',
);

/**
 * No CHECK: containerd's CRI plugin never calls it, and Debian's portmap 1.1.1 fails it for an
 * IPv4-only mapping (it looks for an IPv6 chain it did not make).
 */
type Command = 'ADD' | 'DEL';

/** SPEC "Well-known Error Codes" -> berth's categories. */
function codeOfCniError(code: number): ErrorCode {
  switch (code) {
    case 1: // incompatible CNI version
    case 2: // unsupported field in network configuration
    case 6: // failed to decode content
    case 7: // invalid network config
      return 'FailedPrecondition';
    case 3: // container unknown or does not exist
      return 'NotFound';
    case 4: // invalid necessary environment variables
      return 'InvalidArgument';
    case 11: // try again later
      return 'Unavailable';
    default: // 5 I/O failure, 100+ the plugin's own
      return 'Internal';
  }
}

const versionAtLeast = (v: string, min: string) => {
  const [a, b] = [v, min].map((x) => x.split('.').map(Number));
  for (let i = 0; i < 3; i++) if ((a![i] ?? 0) !== (b![i] ?? 0)) return (a![i] ?? 0) > (b![i] ?? 0);
  return true;
};

/** Collects a plugin's stdout, up to MAX_OUTPUT. */
class Collector extends Writable {
  private parts: Buffer[] = [];
  private size = 0;
  overflow = false;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.size += chunk.length;
    if (this.size > MAX_OUTPUT) this.overflow = true;
    else this.parts.push(chunk);
    cb();
  }
  text(): string {
    return Buffer.concat(this.parts).toString('utf8');
  }
}

interface Invocation {
  containerId: string;
  netns: string;
  ifName: string;
  cniArgs: Array<[string, string]>;
  portMappings: CniPortMapping[];
}

export class Cni {
  private readonly timeoutMs: number;
  private readonly busy = new Map<string, Promise<unknown>>();
  private cacheDirMade = false;

  constructor(private readonly opts: CniOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Whether pods can be networked now (CRI Status `NetworkReady`): a valid network configuration and
   * every plugin it names, loopback included. Throws FailedPrecondition saying what is missing.
   */
  async status(): Promise<void> {
    const net = await this.loadNetwork();
    await this.pluginPaths(LOOPBACK);
    await this.pluginPaths(net);
  }

  /** The network configuration pods get now: the first conf file of confDir in lexical order. */
  async loadNetwork(): Promise<CniConfList> {
    const dir = this.opts.confDir;
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

  /** ADD: attaches the pod's namespace to the network (and brings its loopback up). */
  async setUp(p: CniPod): Promise<CniAttachment> {
    const inv = this.invocation(p);
    return this.serial(inv.containerId, async () => {
      if (!(await isNetns(p.netnsPath))) throw invalidArgument(`${p.netnsPath} is not a network namespace`);
      const net = await this.loadNetwork();
      const withLo = p.loopback !== false;
      const [lo, paths] = [withLo ? await this.pluginPaths(LOOPBACK) : [], await this.pluginPaths(net)];
      const cacheFile = await this.cacheFile(inv.containerId, inv.ifName);
      if (await exists(cacheFile))
        throw new BerthError('AlreadyExists', `the network of ${inv.containerId} (${inv.ifName}) is set up already`);
      // recorded before any plugin runs: a DEL after a crash half-way still knows the configuration
      const record: CniCacheRecord = {
        kind: 'berthCniCacheV1',
        containerId: inv.containerId,
        ifName: inv.ifName,
        netnsPath: inv.netns,
        netnsId: await netnsId(inv.netns),
        network: net.raw,
        cniArgs: inv.cniArgs,
        portMappings: inv.portMappings,
        result: null,
      };
      await writeFileReplace(cacheFile, JSON.stringify(record), 0o600);
      let done = 0;
      let loUp = false;
      let prev: CniResult | undefined;
      // the loopback network runs beside the list (it touches only the pod's `lo`): its time is hidden
      const loAdd = withLo
        ? this.exec(lo[0]!, LOOPBACK, LOOPBACK.plugins[0]!, 'ADD', { ...inv, ifName: 'lo' }, undefined).then(
            () => null,
            (e: unknown) => ({ e }),
          )
        : Promise.resolve({ e: null });
      try {
        for (const [i, pl] of net.plugins.entries()) {
          prev = await this.exec(paths[i]!, net, pl, 'ADD', inv, prev);
          done++;
        }
        const loFailed = await loAdd;
        if (loFailed?.e) throw loFailed.e;
        loUp = withLo;
        if (!prev) throw failedPrecondition(`CNI network ${net.name}: its plugins gave no result`);
        record.result = prev.raw;
        await writeFileReplace(cacheFile, JSON.stringify(record), 0o600);
      } catch (e) {
        loUp = withLo && (await loAdd) === null;
        // SPEC: on a failed ADD, DEL every plugin of the list, in reverse order, called or not
        const undoPrev = done > 0 && versionAtLeast(net.cniVersion, '0.4.0') ? prev : undefined;
        for (const [i, pl] of [...net.plugins.entries()].reverse())
          await this.exec(paths[i]!, net, pl, 'DEL', inv, undoPrev).catch(() => undefined);
        if (loUp)
          await this.exec(lo[0]!, LOOPBACK, LOOPBACK.plugins[0]!, 'DEL', { ...inv, ifName: 'lo' }, undefined).catch(
            () => undefined,
          );
        await fsp.rm(cacheFile, { force: true });
        throw e;
      }
      return { network: net.name, ips: prev.ips, interfaces: prev.interfaces, routes: prev.routes, dns: prev.dns };
    });
  }

  /**
   * DEL: detaches the pod, with the configuration of its ADD (from the cache; without a record, the
   * current configuration, and nothing at all when there is none). Idempotent.
   */
  async tearDown(p: CniPod): Promise<void> {
    const inv = this.invocation(p);
    return this.serial(inv.containerId, async () => {
      const rec = await this.readCache(inv.containerId, inv.ifName);
      let net: CniConfList;
      let use = inv;
      let prev: CniResult | undefined;
      if (rec) {
        net = parseConfList(JSON.stringify(rec.network), `cached network of ${inv.containerId}`);
        use = { ...inv, cniArgs: rec.cniArgs, portMappings: rec.portMappings };
        if (rec.result) prev = parseResult(rec.result, `cached result of ${inv.containerId}`);
      } else {
        try {
          net = await this.loadNetwork();
        } catch (e) {
          if (isBerthError(e, 'FailedPrecondition')) return; // no record, no network: nothing of ours to undo
          throw e;
        }
      }
      // the caller's path; else the ADD's, if it still names the same namespace (a pid may be reused)
      let netnsPath = p.netnsPath;
      if (!netnsPath && rec?.netnsPath && (await netnsId(rec.netnsPath)) === rec.netnsId) netnsPath = rec.netnsPath;
      use = { ...use, netns: netnsPath && (await isNetns(netnsPath)) ? netnsPath : '' };
      const paths = await this.pluginPaths(net);
      // SPEC: prevResult on DEL from 0.4.0 on
      const withPrev = versionAtLeast(net.cniVersion, '0.4.0') ? prev : undefined;
      for (const [i, pl] of [...net.plugins.entries()].reverse())
        await this.exec(paths[i]!, net, pl, 'DEL', use, withPrev);
      if (use.netns !== '' && p.loopback !== false) {
        const lo = await this.pluginPaths(LOOPBACK);
        await this.exec(lo[0]!, LOOPBACK, LOOPBACK.plugins[0]!, 'DEL', { ...use, ifName: 'lo' }, undefined);
      }
      if (rec) await fsp.rm(await this.cacheFile(inv.containerId, inv.ifName), { force: true });
    });
  }

  /** Checks a caller's parameters (InvalidArgument) and turns them into the plugins' environment. */
  private invocation(p: CniPod): Invocation {
    if (!CNI_NAME_RE.test(p.containerId))
      throw invalidArgument(`${JSON.stringify(p.containerId)} is not a container id`);
    const ifName = p.ifName ?? 'eth0';
    if (!IFNAME_RE.test(ifName) || ifName === '.' || ifName === '..')
      throw invalidArgument(`${JSON.stringify(ifName)} is not an interface name`);
    if (typeof p.netnsPath !== 'string' || (p.netnsPath !== '' && !p.netnsPath.startsWith('/')))
      throw invalidArgument(`${JSON.stringify(p.netnsPath)} is not a network namespace path`);
    const cniArgs: Array<[string, string]> = [];
    for (const [k, v] of Object.entries(p.args ?? {})) {
      if (!ARG_KEY_RE.test(k) || !ARG_VALUE_RE.test(v))
        throw invalidArgument(
          `CNI argument ${JSON.stringify(`${k}=${v}`)}: keys are alphanumeric, values have no ; = or spaces`,
        );
      cniArgs.push([k, v]);
    }
    // libcni's plugins refuse arguments they do not know unless told otherwise (containerd sends it too)
    if (cniArgs.length && !cniArgs.some(([k]) => k === 'IgnoreUnknown')) cniArgs.unshift(['IgnoreUnknown', '1']);
    const portMappings = parsePortMappings(p.portMappings, 'portMappings');
    return { containerId: p.containerId, netns: p.netnsPath, ifName, cniArgs, portMappings };
  }

  private async serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.busy.get(key) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.busy.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.busy.get(key) === settled) this.busy.delete(key);
    }
  }

  /** Each plugin's executable, looked up in the bin dirs in order (libcni FindInPath). */
  private async pluginPaths(net: CniConfList): Promise<string[]> {
    return Promise.all(
      net.plugins.map(async (pl) => {
        for (const dir of this.opts.binDirs) {
          const path = join(dir, pl.type);
          try {
            const st = await fsp.stat(path);
            if (st.isFile() && st.mode & 0o111) return path;
          } catch {
            // not in this dir
          }
        }
        throw failedPrecondition(
          `CNI network ${net.name}: plugin ${pl.type} not found in ${this.opts.binDirs.join(':') || '(no bin dirs)'}`,
        );
      }),
    );
  }

  /** Runs one plugin. ADD answers its result; DEL answers the prevResult it was given. */
  private async exec(
    path: string,
    net: CniConfList,
    pl: CniPluginConf,
    command: Command,
    inv: Invocation,
    prev: CniResult | undefined,
  ): Promise<CniResult | undefined> {
    const conf: JsonObject = { ...pl.raw, name: net.name, cniVersion: net.cniVersion };
    delete conf['prevResult'];
    delete conf['runtimeConfig'];
    if (prev) conf['prevResult'] = prev.raw;
    const runtimeConfig: JsonObject = {};
    if (pl.capabilities.has('portMappings') && inv.portMappings.length)
      runtimeConfig['portMappings'] = inv.portMappings;
    if (Object.keys(runtimeConfig).length) conf['runtimeConfig'] = runtimeConfig;
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_')) env[k] = v;
    env['PATH'] ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'; // portmap and bridge run iptables
    Object.assign(env, {
      CNI_COMMAND: command,
      CNI_CONTAINERID: inv.containerId,
      CNI_NETNS: inv.netns,
      CNI_IFNAME: inv.ifName,
      CNI_ARGS: inv.cniArgs.map(([k, v]) => `${k}=${v}`).join(';'),
      CNI_PATH: this.opts.binDirs.join(':'),
    });
    const what = `CNI plugin ${pl.type} (network ${net.name}, ${command} of ${inv.containerId})`;
    const out = new Collector();
    try {
      await runCommand(path, [], {
        input: JSON.stringify(conf),
        output: out,
        env,
        timeoutMs: this.timeoutMs,
        group: true,
      });
    } catch (e) {
      if (e instanceof CommandError && e.exitCode === null)
        throw new BerthError('Unavailable', `${what} did not finish in ${this.timeoutMs / 1000} s and was killed`, {
          cause: e,
        });
      if (e instanceof CommandError) {
        const body = parseErrorBody(out.text());
        if (body)
          throw new BerthError(
            codeOfCniError(body.code),
            `${what}: ${body.msg}${body.details ? `: ${body.details}` : ''} (CNI error ${body.code})`,
            { cause: e },
          );
        throw new BerthError('Internal', `${what}: exited ${e.exitCode}: ${e.stderr.trim() || out.text().trim()}`, {
          cause: e,
        });
      }
      throw new BerthError('Internal', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (command !== 'ADD') return prev;
    if (out.overflow) throw new BerthError('Internal', `${what}: its result is larger than ${MAX_OUTPUT} bytes`);
    let v: unknown;
    try {
      v = JSON.parse(out.text());
    } catch {
      throw new BerthError('Internal', `${what}: its result is not JSON`);
    }
    try {
      return parseResult(v, what);
    } catch (e) {
      throw new BerthError('Internal', e instanceof Error ? e.message : String(e), { cause: e });
    }
  }

  /** The cache dir's results/ (made 0700 on first use) and the record's file in it. */
  private async cacheFile(containerId: string, ifName: string): Promise<string> {
    const dir = join(this.opts.cacheDir, 'results');
    // once per daemon (three fs calls fewer on every ADD); made again if it went meanwhile
    if (!this.cacheDirMade || !(await exists(dir))) {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      await fsp.chmod(this.opts.cacheDir, 0o700);
      await fsp.chmod(dir, 0o700);
      this.cacheDirMade = true;
    }
    return join(dir, `${containerId}-${ifName}.json`);
  }

  private async readCache(containerId: string, ifName: string): Promise<CniCacheRecord | undefined> {
    const file = await this.cacheFile(containerId, ifName);
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
    const rec = parseCacheRecord(text, file);
    if (rec.containerId !== containerId || rec.ifName !== ifName)
      throw failedPrecondition(`${file}: the record is of another attachment`);
    return rec;
  }
}

/** A namespace's identity, `<dev>:<inode>` (empty when the path names none). */
async function netnsId(path: string): Promise<string> {
  try {
    const st = await fsp.stat(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return '';
  }
}

/** Whether `path` is a network namespace (a nsfs file: /proc/<pid>/ns/net or a bind mount of one). */
async function isNetns(path: string): Promise<boolean> {
  try {
    return (await fsp.statfs(path)).type === NSFS_MAGIC;
  } catch {
    return false;
  }
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

/**
 * A pod as the CRI side asks for its network (the shape of engine/k8s.ts `PodNetRequest`, which
 * network/ cannot import: the engine is above it).
 */
export interface CniPodRequest {
  /** the sandbox id */
  id: string;
  name: string;
  namespace: string;
  uid: string;
  /** the pod's network namespace; empty when it is gone (DEL does what it can) */
  netns: string;
  portMappings: Array<{ protocol: 'tcp' | 'udp' | 'sctp'; containerPort: number; hostPort: number; hostIp: string }>;
  /** the pod's `lo` is up already (it was brought up with the namespace): no loopback plugin */
  loUp?: boolean;
}

/**
 * `Cni` behind the engine's `PodNetwork` interface (engine/k8s.ts; this class has its shape): the
 * pod's `K8S_POD_*` as CNI_ARGS, as containerd sends them; the pod IP is the first address of the
 * result, IPv4 before IPv6 (containerd's default), the others its additional IPs; `status` is CRI's
 * NetworkReady with containerd's reason `NetworkPluginNotReady`.
 */
export class CniPodNetwork {
  readonly name = 'cni';

  constructor(readonly cni: Cni) {}

  private pod(p: CniPodRequest): CniPod {
    return {
      containerId: p.id,
      netnsPath: p.netns,
      portMappings: p.portMappings.map((m) => ({
        hostPort: m.hostPort,
        containerPort: m.containerPort,
        protocol: m.protocol,
        ...(m.hostIp ? { hostIP: m.hostIp } : {}),
      })),
      args: {
        K8S_POD_NAMESPACE: p.namespace,
        K8S_POD_NAME: p.name,
        K8S_POD_INFRA_CONTAINER_ID: p.id,
        K8S_POD_UID: p.uid,
      },
      ...(p.loUp ? { loopback: false } : {}),
    };
  }

  async setUp(p: CniPodRequest): Promise<{ ip: string; additionalIps: string[] }> {
    const r = await this.cni.setUp(this.pod(p));
    const ips = r.ips.map((i) => i.address.split('/')[0]!);
    ips.sort((a, b) => Number(a.includes(':')) - Number(b.includes(':'))); // stable: IPv4 first
    return { ip: ips[0] ?? '', additionalIps: ips.slice(1) };
  }

  async tearDown(p: CniPodRequest): Promise<void> {
    await this.cni.tearDown(this.pod(p));
  }

  async status(): Promise<{ ready: boolean; reason: string; message: string }> {
    try {
      await this.cni.status();
      return { ready: true, reason: '', message: '' };
    } catch (e) {
      return { ready: false, reason: 'NetworkPluginNotReady', message: e instanceof Error ? e.message : String(e) };
    }
  }
}

/**
 * The cache record written whole or not at all (temp + rename), without an fsync: it must outlive
 * a killed daemon (the page cache does), not the host, whose reboot takes the pod's namespace,
 * interfaces and rules with it (libcni's own cache is written so; the plugins' IPAM files too).
 * The fsync was on every pod start's path, twice.
 */
async function writeFileReplace(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  await fsp.writeFile(tmp, data, { mode });
  try {
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
