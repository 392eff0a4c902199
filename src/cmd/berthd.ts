/**
 * berthd: the daemon. Serves the Docker Engine API on a unix socket.
 *   --host unix:///run/berth/berth.sock   (-H)
 *   --cri-socket /run/berth/cri.sock      the CRI v1 endpoint (gRPC; default <exec-root>/cri.sock); --cri=false: off
 *   --root /var/lib/berth                 state: content, snapshots, containers, berth.db
 *   --exec-root /run/berth                run state: runtime dirs, conmon sockets, exit files
 *   --runtime crun|runc                   default OCI runtime
 *   --log-level debug|info|warn|error
 *   --cluster-store etcd://HOST:PORT      overlay networks across hosts, state in etcd (with --cluster-advertise)
 *   --cluster-advertise ADDR              this host's address for the other hosts (VXLAN tunnels' local end)
 *   --cluster-ttl DURATION                how long this host's endpoints outlive it in etcd (default 15s)
 *   --rootfs-mountns[=true|false]         a running container's rootfs mounted in its conmon's own mount
 *                                         namespace, not the host's (issue #19; default: env BERTH_ROOTFS_MOUNTNS=1)
 * Containers outlive the daemon (conmon monitors them); at start it reconciles (engine/reconcile.ts).
 */
import { promises as fsp, existsSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../base/errors.js';
import { log, setLogLevel, type Level } from '../base/log.js';
import { openDb, type Db } from '../metadata/db.js';
import { lazy } from '../base/lazy.js';
import { Engine } from '../engine/engine.js';
import { Verbs } from '../engine/verbs.js';
import { buildPull } from '../engine/images.js';
import { dateOf, systemClock, type Clock } from '../base/clock.js';
import { reconcile } from '../engine/reconcile.js';
import { restoreGate } from '../api/restore.js';
import { closeState, makeStateDirs } from '../engine/private-state.js';
import { Router, createApiServer } from '../api/http.js';
import { pingRoutes, systemRoutes } from '../api/routes/system.js';
import { legacyRoutes } from '../api/routes/legacy.js';
import { containerRoutes } from '../api/routes/containers.js';
import { containerIoRoutes } from '../api/routes/container-io.js';
import { containerFsRoutes } from '../api/routes/container-fs.js';
import { execRoutes } from '../api/routes/exec.js';
import { imageRoutes } from '../api/routes/images.js';
import { buildRoutes } from '../api/routes/build.js';
import { buildKitRoutes } from '../api/routes/buildkit.js';
import { clearScratch, openBuildCache } from '../builder/start.js';
import type { TrustGate } from '../trust/gate.js';
import { collectAtStart } from '../engine/gc.js';
import { NetworkManager, parseLinkText } from '../network/manager.js';
import { DEFAULT_DIRS as DEFAULT_PLUGIN_DIRS, PluginRegistry } from '../plugins/registry.js';
import { remoteNetworkDriver, remoteVolumeDriver } from '../plugins/drivers.js';
import { VolumeManager } from '../volume/manager.js';
import { volumeRoutes } from '../api/routes/volumes.js';
import { networkRoutes } from '../api/routes/networks.js';
import { parseAdvertise, parseStoreUrl } from '../cluster/flags.js';
import { openServices } from './services.js';
import { startCri } from './cri.js';
import { goDurationNs } from '../base/duration.js';
import type { RuntimeName } from '../runtime/types.js';

interface Flags {
  host: string;
  root: string;
  execRoot: string;
  runtime: RuntimeName | undefined;
  logLevel: Level;
  /** the CRI endpoint's unix socket ('': `<exec-root>/cri.sock`, i.e. /run/berth/cri.sock); `--cri=false`: none */
  criSocket: string;
  cri: boolean;
  /** Engine rootfsMountns: `--rootfs-mountns`, else env BERTH_ROOTFS_MOUNTNS=1 */
  rootfsMountns: boolean;
  /** where the CRI streaming server listens (Exec/Attach/PortForward URLs); port 0: any free one */
  criStreamAddress: string;
  criStreamPort: number;
  /** `needed`: pods that need no process get none (their namespaces pinned); `always`: an infra per pod */
  criPodInfra: 'needed' | 'always';
  /** CNI: the conflist directory, the plugins' directories (pods get loopback only without a conflist) */
  cniConfDir: string;
  cniBinDirs: string[];
  insecureRegistries: string[];
  registryMirrors: string[];
  /** extra directories searched for legacy plugins (sockets, .spec, .json), before Docker's */
  pluginDirs: string[];
  trustPolicy: string | undefined;
  /** the CRIU binary (default: scripts/criu.sh's, else `criu` in PATH) */
  criu: string | undefined;
  /** the conmon binary (default: scripts/conmon.sh's when it answers, else `conmon` in PATH) */
  conmon: string | undefined;
  /** how long one CRIU operation may take before it is ended and the container goes on */
  checkpointTimeoutMs: number;
  /** `etcd://HOST:PORT`, this host's address for the others, and its lease's TTL (s) */
  clusterStore: string | undefined;
  clusterAdvertise: string | undefined;
  clusterTtlSec: number;
}

function usage(msg: string): never {
  process.stderr.write(
    `berthd: ${msg}\nusage: berthd [--host unix:///run/berth/berth.sock] [--root DIR] [--exec-root DIR]\n` +
      '    [--cri-socket PATH] [--cri=false] [--cri-stream-address ADDR] [--cri-stream-port N]\n' +
      '    [--rootfs-mountns[=true|false]]\n' +
      '    [--cri-pod-infra needed|always]\n' +
      '    [--cni-conf-dir DIR] [--cni-bin-dir DIR]...\n' +
      '    [--runtime crun|runc] [--log-level LEVEL] [--insecure-registry HOST:PORT]... [--registry-mirror URL]...\n' +
      '    [--plugin-dir DIR]... [--trust-policy FILE] [--criu PATH] [--conmon PATH]\n' +
      '    [--checkpoint-timeout DURATION]\n' +
      '    [--cluster-store etcd://HOST:PORT --cluster-advertise ADDR [--cluster-ttl DURATION]]\n',
  );
  process.exit(2);
}

export function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    host: 'unix:///run/berth/berth.sock',
    root: '/var/lib/berth',
    execRoot: '/run/berth',
    runtime: undefined,
    logLevel: 'info',
    criSocket: '',
    cri: true,
    rootfsMountns: process.env['BERTH_ROOTFS_MOUNTNS'] === '1',
    criStreamAddress: '127.0.0.1',
    criStreamPort: 0,
    criPodInfra: 'needed',
    cniConfDir: '/etc/cni/net.d',
    cniBinDirs: [],
    insecureRegistries: [],
    registryMirrors: [],
    pluginDirs: [],
    trustPolicy: undefined,
    criu: undefined,
    conmon: undefined,
    checkpointTimeoutMs: 120_000,
    clusterStore: undefined,
    clusterAdvertise: undefined,
    clusterTtlSec: 15,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = () => (eq > 0 ? a.slice(eq + 1) : (argv[++i] ?? usage(`${name} needs a value`)));
    switch (name) {
      case '-H':
      case '--host':
        f.host = value();
        break;
      case '--root':
      case '--data-root':
        f.root = value();
        break;
      case '--exec-root':
        f.execRoot = value();
        break;
      case '--runtime':
      case '--default-runtime': {
        const v = value();
        if (v !== 'crun' && v !== 'runc') usage(`unknown runtime ${v} (crun or runc)`);
        f.runtime = v;
        break;
      }
      case '--log-level':
        f.logLevel = value() as Level;
        break;
      case '--cri-socket': {
        const v = value();
        f.criSocket = v.startsWith('unix://') ? v.slice('unix://'.length) : v;
        if (!f.criSocket.startsWith('/')) usage(`--cri-socket ${v}: an absolute path (or unix:///path)`);
        break;
      }
      case '--cri-stream-address':
        f.criStreamAddress = value();
        break;
      case '--cri-stream-port': {
        const v = value();
        const n = Number(v);
        if (!/^\d+$/.test(v) || n > 65535)
          usage(`--cri-stream-port ${v}: a port number (0: the kernel picks a free one)`);
        f.criStreamPort = n;
        break;
      }
      case '--cri-pod-infra': {
        const v = value();
        if (v !== 'needed' && v !== 'always') usage(`--cri-pod-infra ${v}: needed or always`);
        f.criPodInfra = v;
        break;
      }
      case '--cni-conf-dir':
        f.cniConfDir = value();
        break;
      case '--cni-bin-dir':
        f.cniBinDirs.push(value());
        break;
      case '--rootfs-mountns': {
        const v = eq > 0 ? a.slice(eq + 1) : 'true';
        if (v !== 'true' && v !== 'false') usage(`--rootfs-mountns=${v}: true or false`);
        f.rootfsMountns = v === 'true';
        break;
      }
      case '--cri': {
        const v = eq > 0 ? a.slice(eq + 1) : 'true';
        if (v !== 'true' && v !== 'false') usage(`--cri=${v}: true or false`);
        f.cri = v === 'true';
        break;
      }
      case '--trust-policy':
        f.trustPolicy = value();
        break;
      case '--insecure-registry':
        f.insecureRegistries.push(value());
        break;
      case '--registry-mirror':
        f.registryMirrors.push(value().replace(/\/+$/, ''));
        break;
      case '--plugin-dir':
        f.pluginDirs.push(value());
        break;
      case '--criu':
        f.criu = value();
        break;
      case '--conmon':
        f.conmon = value();
        break;
      case '--checkpoint-timeout': {
        const v = value();
        const ns = goDurationNs(v);
        const ms = ns === null ? null : ns / 1e6;
        if (ms === null || ms <= 0) usage(`--checkpoint-timeout ${v}: a duration such as 90s or 2m`);
        f.checkpointTimeoutMs = ms;
        break;
      }
      case '--cluster-store': {
        const v = value();
        try {
          parseStoreUrl(v);
        } catch (e) {
          usage(errorMessage(e));
        }
        f.clusterStore = v;
        break;
      }
      case '--cluster-advertise': {
        const v = value();
        try {
          f.clusterAdvertise = parseAdvertise(v);
        } catch (e) {
          usage(errorMessage(e));
        }
        break;
      }
      case '--cluster-ttl': {
        const v = value();
        const ns = goDurationNs(v);
        const s = ns === null ? null : Math.round(ns / 1e9);
        if (s === null || s < 1 || s > 3600) usage(`--cluster-ttl ${v}: a duration from 1s to 1h, such as 15s`);
        f.clusterTtlSec = s;
        break;
      }
      case '-h':
      case '--help':
        usage('help');
      default:
        usage(`unknown flag ${a}`);
    }
  }
  if (!!f.clusterStore !== !!f.clusterAdvertise) usage('--cluster-store and --cluster-advertise go together');
  return f;
}

function socketPath(host: string): string {
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.startsWith('/')) return host;
  return usage(`only unix sockets are supported for --host (got ${host})`);
}

/** One daemon per root: a pid file in the root, refused while its pid lives. */
function lockRoot(root: string): void {
  const pidFile = join(root, 'berthd.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (
      pid > 0 &&
      pid !== process.pid &&
      existsSync(`/proc/${pid}`) &&
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('berthd')
    )
      usage(`another berthd (pid ${pid}) is using ${root}`);
  }
  writeFileSync(pidFile, String(process.pid));
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  // dockerd's umask, whatever the shell that started us had: the runtime's device nodes, the files it
  // writes into a rootfs and the ones we write take their modes from it (a 077 made /dev/null 0600)
  process.umask(0o022);
  // the one clock of the daemon: every service reads time through it (unit tests pass a ManualClock)
  const clock = systemClock;
  setLogLevel(flags.logLevel);
  const sock = socketPath(flags.host);
  const registries = { insecure: flags.insecureRegistries, mirrors: flags.registryMirrors };
  // read before anything is made: a bad policy leaves no trace. trust's code (tuf-js) is loaded only when a policy asks for it
  const trust = flags.trustPolicy
    ? (await import('../trust/gate.js')).TrustGate.open(flags.trustPolicy, join(flags.root, 'trust'), registries)
    : null;
  // private before anything is written into them (engine/private-state.ts: dockerd's modes)
  await makeStateDirs(flags.root, flags.execRoot);
  lockRoot(flags.root);
  const db = openDb(join(flags.root, 'berth.db'));
  // The socket opens first (cmd/README.md "Start-up"): /_ping answers while the services open (the
  // runtime's probes, the networks' links and rules), and every other request waits for its route
  // (Router.opening), then for live restore's gate.
  const router = new Router();
  pingRoutes(router);
  let opened: () => void = () => undefined;
  router.opening = new Promise<void>((r) => (opened = r));
  const server = createApiServer(router);
  await fsp.mkdir(join(sock, '..'), { recursive: true });
  try {
    unlinkSync(sock); // a stale socket from a killed daemon
  } catch {
    /* none */
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () => resolve());
  });
  await fsp.chmod(sock, 0o660);
  const d = await openDaemon(flags, db, router, trust, registries, clock).catch((e: unknown) => {
    server.close();
    rmSync(sock, { force: true }); // a daemon that could not open leaves no socket behind
    throw e;
  });
  opened();
  router.opening = undefined;
  d.listening(); // live restore's pass begins (requests wait on its gate meanwhile)
  // after the Docker API (loading the CRI's protocol files and probing CNI took seconds of a start
  // on a loaded machine); by default beside the daemon's other run state, so a second berthd (its
  // own --exec-root) never takes another's. As containerd with a CRI plugin that fails to load,
  // the daemon goes on without it, and says why.
  const criServer = flags.cri
    ? await startCri(d.verbs, flags, flags.criSocket || join(flags.execRoot, 'cri.sock'), clock).catch((e: unknown) => {
        log.error('CRI endpoint not started', { err: errorMessage(e) });
        return null;
      })
    : null;
  const host = d.host;
  log.info('berthd ready', {
    socket: sock,
    root: flags.root,
    runtime: host.defaultRuntime,
    cgroup: `v${host.cgroupVersion}`,
    repair: host.cgroupRepair || 'none',
  });
  const shutdown = async (sig: string) => {
    await criServer?.close();
    log.info(`${sig}: shutting down; containers keep running (live restore)`);
    server.close();
    await d.cluster?.close().catch(() => undefined);
    // removed containers' files still going: finished now (what is left, the next start finishes)
    await Promise.race([d.engine.filesRemoved(), new Promise((r) => setTimeout(r, 5000).unref())]);
    db.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * Opens the services behind the socket (image stack, runtime, networks, volumes, engine), starts
 * live restore (its pass waits for `listening`) and puts the Engine API's routes on `router`.
 * The builder, BuildKit and the cluster store's client load on first use (../base/lazy.ts).
 */
async function openDaemon(
  flags: Flags,
  db: Db,
  router: Router,
  trust: TrustGate | null,
  registries: { insecure: string[]; mirrors: string[] },
  clock: Clock,
) {
  const services = await openServices({
    root: flags.root,
    runRoot: flags.execRoot,
    db,
    runtime: flags.runtime,
    criu: flags.criu,
    conmon: flags.conmon,
    checkpointTimeoutMs: flags.checkpointTimeoutMs,
    clock,
  });
  const host = services.runtime.host();
  for (const w of host.warnings) log.warn(w);
  const idFile = join(flags.root, 'engine-id');
  const daemonId = existsSync(idFile)
    ? readFileSync(idFile, 'utf8').trim()
    : (writeFileSync(idFile, randomUUID()), readFileSync(idFile, 'utf8'));
  const plugins = new PluginRegistry([...flags.pluginDirs, ...DEFAULT_PLUGIN_DIRS]);
  const networks = new NetworkManager(db, daemonId, clock);
  networks.drivers = async (name) => remoteNetworkDriver(await plugins.get(name, 'NetworkDriver'));
  // the daemon starts whether or not etcd answers: overlay operations fail (Unavailable) until it does
  const cluster =
    flags.clusterStore && flags.clusterAdvertise
      ? new (await import('../cluster/store.js')).ClusterStore({
          url: flags.clusterStore,
          advertise: flags.clusterAdvertise,
          hostId: daemonId.replace(/-/g, ''),
          ttlSec: flags.clusterTtlSec,
        })
      : null;
  if (cluster) networks.useCluster(cluster, flags.root);
  await networks.init(); // before reconcile: containers it restarts are wired again
  const volumes = new VolumeManager(flags.root, db, clock);
  volumes.drivers = async (name) => remoteVolumeDriver(await plugins.get(name, 'VolumeDriver'));
  await volumes.init();
  const engine = new Engine({
    trust,
    networks,
    volumes,
    root: flags.root,
    runRoot: flags.execRoot,
    db,
    ...services,
    defaultRuntime: host.defaultRuntime,
    registries,
    clock,
    rootfsMountns: flags.rootfsMountns,
  });
  // the networks' name servers read names, hostnames and links when a query comes (a rename shows at once)
  networks.containers = {
    of: (id) => {
      const c = engine.store.find(id);
      return (
        c && { name: c.name, hostname: c.config.Hostname ?? '', links: (c.hostConfig.Links ?? []).map(parseLinkText) }
      );
    },
    idOf: (ref) => engine.store.find(ref)?.id,
  };
  services.runtime.watchExits(
    (id) =>
      void engine.lifecycle
        .onExit(id)
        .catch((e: unknown) => log.error('exit handling failed', { id, err: errorMessage(e) })),
  );
  // live restore: the API opens while it runs; requests wait for the containers they concern
  // (engine/restore-gate.ts, api/restore.ts); the runtime's leftover cgroups go once it is done
  let listening: () => void = () => undefined;
  const restored = reconcile(engine, { startAfter: new Promise<void>((r) => (listening = r)) });
  void restored
    .then(() => services.runtime.pruneCgroups((id) => engine.hasTask(id)))
    .catch((e: unknown) => log.error('live restore failed', { err: errorMessage(e) }));
  // the builder's step cache (its layers kept from GC) and a crashed build's leftovers, at every
  // start; the builder itself (its modules) on the first build
  const builderDeps = {
    root: join(flags.root, 'builder'),
    scratch: join(flags.execRoot, 'builder'),
    db,
    images: services.images,
    snapshots: services.snapshots,
    mounter: services.mounter,
    runtime: services.runtime,
    defaultRuntime: host.defaultRuntime,
    pull: buildPull(engine),
    clock,
  };
  const buildCache = openBuildCache(db, services.images, clock);
  await clearScratch(builderDeps);
  const builder = lazy(async () => new (await import('../builder/builder.js')).Builder(builderDeps, buildCache));
  void collectAtStart(services.images); // orphans of a crash, in the background (engine/gc.ts)
  await closeState(flags.root, flags.execRoot); // the directories the services just made
  // the front door gets the verbs, not the engine's services
  const verbs = new Verbs(engine, { builder, clock });
  router.gate = restoreGate(verbs.system);
  systemRoutes(router, verbs.system, {
    id: daemonId,
    startedAt: dateOf(clock),
    clusterStore: cluster ? (flags.clusterStore ?? '') : '',
    clusterAdvertise: cluster ? (flags.clusterAdvertise ?? '') : '',
  });
  containerRoutes(router, verbs);
  containerIoRoutes(router, verbs);
  containerFsRoutes(router, verbs);
  legacyRoutes(router, verbs);
  execRoutes(router, verbs);
  imageRoutes(router, verbs.images);
  buildRoutes(router, verbs.build, verbs.buildkit);
  buildKitRoutes(router, verbs.buildkit);
  networkRoutes(router, verbs.networks);
  volumeRoutes(router, verbs.volumes);
  return { verbs, engine, host, cluster, listening };
}

main().catch((e: unknown) => {
  process.stderr.write(`berthd: ${errorMessage(e)}\n`);
  process.exit(1);
});
