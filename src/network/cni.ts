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
import { Writable } from 'node:stream';
import { BerthError, failedPrecondition, invalidArgument, isBerthError, type ErrorCode } from '../base/errors.js';
import type { JsonObject } from '../base/json.js';
import { CommandError, runCommand } from '../base/proc.js';
import { exists } from '../base/fs.js';
import { CniCache, netnsId } from './cni-cache.js';
import { LOOPBACK, loadNetwork, pluginPaths, versionAtLeast } from './cni-conf.js';
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
export {
  DEFAULT_CONFLIST_FILE,
  DEFAULT_NETWORK_NAME,
  DEFAULT_SUBNET,
  defaultConflist,
  writeDefaultConflist,
} from './cni-conf.js';

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
const IFNAME_RE = /^[^\s/:]{1,15}$/; // SPEC: < 16 characters, no `/`, `:` or white space
const ARG_KEY_RE = /^[A-Za-z0-9_]+$/;
const ARG_VALUE_RE = /^[^;=\s]*$/;

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
  private readonly cache: CniCache;

  constructor(private readonly opts: CniOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.cache = new CniCache(opts.cacheDir);
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
  loadNetwork(): Promise<CniConfList> {
    return loadNetwork(this.opts.confDir);
  }

  /** ADD: attaches the pod's namespace to the network (and brings its loopback up). */
  async setUp(p: CniPod): Promise<CniAttachment> {
    const inv = this.invocation(p);
    return this.serial(inv.containerId, async () => {
      if (!(await isNetns(p.netnsPath))) throw invalidArgument(`${p.netnsPath} is not a network namespace`);
      const net = await this.loadNetwork();
      const withLo = p.loopback !== false;
      const [lo, paths] = [withLo ? await this.pluginPaths(LOOPBACK) : [], await this.pluginPaths(net)];
      const cacheFile = await this.cache.file(inv.containerId, inv.ifName);
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
      await this.cache.write(cacheFile, record);
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
        await this.cache.write(cacheFile, record);
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
      const rec = await this.cache.read(inv.containerId, inv.ifName);
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
      if (rec) await fsp.rm(await this.cache.file(inv.containerId, inv.ifName), { force: true });
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

  private pluginPaths(net: CniConfList): Promise<string[]> {
    return pluginPaths(net, this.opts.binDirs);
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
}

/** Whether `path` is a network namespace (a nsfs file: /proc/<pid>/ns/net or a bind mount of one). */
async function isNetns(path: string): Promise<boolean> {
  try {
    return (await fsp.statfs(path)).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}
