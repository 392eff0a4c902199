/**
 * A RUN step: the command runs in a container of the OCI runtime (`<runtime> run`, no conmon,
 * no engine record) on a fresh overlay snapshot of the parent's layers; its upper directory then
 * becomes the step's layer (packed once for the diff id, then moved into place: no unpack).
 * Mount points the runtime had to create (for /etc/hosts, secrets, caches) are removed from the
 * upper directory first, so nothing of a mount ever lands in a layer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, promises as fsp, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { errorMessage, invalidArgument } from '../base/errors.js';
import { chainIds } from '../image/store.js';
import { upperDirOf, type LayerStore, type Mounter, type Snapshotter } from '../snapshot/types.js';
import type { BuildRunner, RuntimeName, SpecInput } from '../runtime/types.js';
import { DEFAULT_PATH } from '../runtime/spec.js';
import { resolveUser } from '../runtime/user.js';
import { resolveInRoot } from '../archive/container-fs.js';
import { packUpper } from '../archive/layer.js';
import { O_DIRECTORY, O_PATH, getXattr, openat2 } from '../base/syscalls.js';
import { fdPath, parentBeneath } from '../archive/rooted.js';
import type { Writable } from 'node:stream';
import { CommandFailed, type StepLimits } from './types.js';

export type MountSpec = Record<string, string>;

/** `type=cache,target=/x,id=y` -> fields (Docker's CSV form; `ro`/`rw` as flags). */
export function parseMountFlag(text: string): MountSpec {
  const out: MountSpec = {};
  for (const part of text.split(',')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    const v = eq < 0 ? 'true' : part.slice(eq + 1);
    const key =
      (
        { dst: 'target', destination: 'target', src: 'source', ro: 'readonly', rw: 'readwrite' } as Record<
          string,
          string
        >
      )[k] ?? k;
    out[key] = v;
  }
  out['type'] ??= 'bind';
  if (!['bind', 'cache', 'secret', 'tmpfs', 'ssh'].includes(out['type']!))
    throw invalidArgument(`unsupported mount type "${out['type']}"`);
  if (out['type'] === 'secret') out['target'] ??= `/run/secrets/${out['id'] ?? ''}`;
  // ssh: the target defaults to /run/buildkit/ssh_agent.<n>, numbered over the RUN's ssh mounts (withSshTargets)
  if (out['type'] === 'ssh' && !out['target']) return out;
  if (!out['target']) throw invalidArgument(`mount type=${out['type']} requires a target`);
  if (!out['target'].startsWith('/')) out['target'] = `/${out['target']}`;
  return out;
}

/**
 * The ssh mounts of one RUN without a target get BuildKit's default, `/run/buildkit/ssh_agent.<i>`
 * (i counts the RUN's ssh mounts); SSH_AUTH_SOCK is the first one's target (null: no ssh mount).
 */
export function withSshTargets(specs: MountSpec[]): string | null {
  let i = 0;
  let first: string | null = null;
  for (const m of specs) {
    if (m['type'] !== 'ssh') continue;
    m['target'] ||= `/run/buildkit/ssh_agent.${i}`;
    first ??= m['target'];
    i++;
  }
  return first;
}

/** A mount of a RUN step, resolved to something on the host. */
export type RunMount =
  | { type: 'bind'; target: string; source: string; readonly: boolean }
  | { type: 'tmpfs'; target: string; size?: string }
  | { type: 'secret'; target: string; data: Buffer; mode: number; uid: number; gid: number };

export interface RunStep {
  chainId: string | null;
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  mounts: RunMount[];
  /** a path: join that network namespace (networkmode=container:<id>) */
  network: 'host' | 'none' | { path: string };
  /** extrahosts: lines added to /etc/hosts */
  extraHosts: Array<{ host: string; ip: string }>;
  /** resources, ulimits, /dev/shm size */
  limits?: StepLimits | undefined;
  runtime: RuntimeName;
  epoch: number | null;
  signal: AbortSignal;
  output: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export interface RunDeps {
  snapshots: Snapshotter & LayerStore;
  mounter: Mounter;
  runtime: BuildRunner;
  writeLayer: (fill: (out: Writable) => Promise<void>) => Promise<{ diffId: string; size: number }>;
  /** private scratch dir (bundles, secrets) on a tmpfs when possible */
  scratch: string;
}

/**
 * What the runtime will create in the upper dir for a mount at `target`: the first missing path
 * (null if the target exists) and the existing directories above it, whose copy-up the mount
 * point causes (with their metadata, to tell a copy-up from a change the command made).
 */
interface MountPoint {
  target: string;
  created: string | null;
  parents: Array<{ path: string; mode: number; uid: number; gid: number }>;
}

async function mountPoint(root: string, target: string): Promise<MountPoint> {
  const parts = target.split('/').filter(Boolean);
  const parents: MountPoint['parents'] = [];
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const st = await fsp.lstat(await resolveInRoot(root, p)).catch(() => null);
    if (!st) return { target, created: p, parents };
    if (i < parts.length) parents.push({ path: p, mode: st.mode, uid: st.uid, gid: st.gid });
  }
  return { target, created: null, parents: [] };
}

/**
 * Removes a created mount point from an upper dir: the target, the empty directories created for
 * it, and the copied-up directories above that the command left as they were.
 */
async function removeMountPoint(upper: string, m: MountPoint): Promise<void> {
  if (!m.created) return;
  // the command may have put symlinks where the mount point was: nothing here follows one
  const upperFd = openat2(-100, upper, O_PATH | O_DIRECTORY, 0);
  const withEntry = async (p: string, f: (at: string) => Promise<boolean>): Promise<boolean> => {
    const parent = parentBeneath(upperFd, p);
    if (!parent) return false;
    try {
      return await f(fdPath(parent.fd, parent.name));
    } finally {
      parent.close();
    }
  };
  try {
    for (let p = m.target; p.length >= m.created.length; p = posix.dirname(p)) {
      const go = await withEntry(p, async (abs) => {
        const st = await fsp.lstat(abs).catch(() => null);
        if (!st) return true;
        if (st.isDirectory()) {
          if ((await fsp.readdir(abs)).length > 0) return false; // the command wrote here: keep it
          await fsp.rmdir(abs);
        } else if (st.isFile() && st.size === 0) await fsp.unlink(abs);
        else return false;
        return true;
      });
      if (!go) return;
    }
    for (const parent of [...m.parents].reverse()) {
      const go = await withEntry(parent.path, async (abs) => {
        const st = await fsp.lstat(abs).catch(() => null);
        if (!st?.isDirectory() || st.mode !== parent.mode || st.uid !== parent.uid || st.gid !== parent.gid)
          return false;
        if (getXattr(abs, 'trusted.overlay.opaque') === 'y' || (await fsp.readdir(abs)).length > 0) return false;
        await fsp.rmdir(abs);
        return true;
      });
      if (!go) return;
    }
  } finally {
    closeSync(upperFd);
  }
}

/** Clamps every mtime in `dir` to `epoch` (SOURCE_DATE_EPOCH): identical inputs, identical layer. */
async function clampMtimes(dir: string, epoch: number): Promise<void> {
  const walk = async (d: string): Promise<void> => {
    for (const ent of await fsp.readdir(d, { withFileTypes: true })) {
      const abs = join(d, ent.name);
      if (ent.isDirectory()) await walk(abs);
      const st = await fsp.lstat(abs);
      if (st.mtimeMs > epoch * 1000) await fsp.lutimes(abs, epoch, epoch);
    }
  };
  await walk(dir);
  await fsp.lutimes(dir, epoch, epoch);
}

/**
 * Runs the step; resolves with the new layer (null when the command changed nothing). A non-zero
 * exit is an error with Docker's wording; nothing of the step remains then.
 */
export async function runStep(
  d: RunDeps,
  s: RunStep,
  what: string,
): Promise<{ diffId: string; chainId: string } | null> {
  const id = randomBytes(32).toString('hex');
  const key = `build-${id}`;
  const bundle = join(d.scratch, id);
  const rootfs = join(bundle, 'rootfs');
  await fsp.mkdir(rootfs, { recursive: true });
  let mounted = false;
  try {
    const mounts = await d.snapshots.prepare(key, s.chainId);
    await d.mounter.mountAll(mounts, rootfs);
    mounted = true;
    const hostname = id.slice(0, 12);
    const hosts = join(bundle, 'hosts');
    await fsp.writeFile(
      hosts,
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n` +
        (s.network === 'host' ? readFileSync('/etc/hosts', 'utf8') : '') +
        s.extraHosts.map((h) => `${h.ip}\t${h.host}\n`).join(''),
    );
    const specMounts: SpecInput['mounts'] = [
      { destination: '/etc/hosts', type: 'bind', source: hosts, options: ['rbind', 'ro', 'rprivate'] },
      {
        destination: '/etc/resolv.conf',
        type: 'bind',
        source: '/etc/resolv.conf',
        options: ['rbind', 'ro', 'rprivate'],
      },
    ];
    for (const [i, m] of s.mounts.entries()) {
      if (m.type === 'bind')
        specMounts.push({
          destination: m.target,
          type: 'bind',
          source: m.source,
          options: ['rbind', m.readonly ? 'ro' : 'rw', 'rprivate'],
        });
      else if (m.type === 'tmpfs')
        specMounts.push({
          destination: m.target,
          type: 'tmpfs',
          source: 'tmpfs',
          options: ['nosuid', 'nodev', ...(m.size ? [`size=${m.size}`] : [])],
        });
      else {
        const file = join(bundle, `secret-${i}`);
        await fsp.writeFile(file, m.data, { mode: m.mode });
        await fsp.chown(file, m.uid, m.gid);
        specMounts.push({
          destination: m.target,
          type: 'bind',
          source: file,
          options: ['rbind', 'ro', 'rprivate', 'nosuid', 'noexec', 'nodev'],
        });
      }
    }
    // the paths the runtime creates for these mounts: removed again before the layer is taken
    const points = await Promise.all(
      [...specMounts, { destination: '/proc' }, { destination: '/sys' }, { destination: '/dev' }].map((m) =>
        mountPoint(rootfs, m.destination),
      ),
    );
    const user = await resolveUser(rootfs, s.user);
    const env = [...s.env];
    if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH);
    if (!env.some((e) => e.startsWith('HOSTNAME='))) env.push(`HOSTNAME=${hostname}`);
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
    const spec: SpecInput = {
      id: key,
      rootfs,
      readonlyRootfs: false,
      args: s.args,
      env,
      cwd: s.cwd || '/',
      user,
      terminal: false,
      hostname,
      network: s.network,
      privileged: false,
      capAdd: [],
      capDrop: [],
      seccomp: 'default',
      noNewPrivileges: false,
      resources: s.limits?.resources ?? {},
      ulimits: s.limits?.ulimits ?? [],
      ...(s.limits?.shmSize ? { shmSize: s.limits.shmSize } : {}),
      mounts: specMounts,
      init: false,
      cgroupsPath: `/berth/${key}`,
    };
    const code = await d.runtime.runToCompletion(
      { id: key, bundleDir: bundle, runtime: s.runtime, signal: s.signal, onOutput: s.output },
      spec,
    );
    s.signal.throwIfAborted();
    if (code !== 0) throw new CommandFailed(what, code);
    await d.mounter.unmount(rootfs);
    mounted = false;
    const upper = upperDirOf(mounts);
    for (const p of points.sort((a, b) => b.target.length - a.target.length)) await removeMountPoint(upper, p);
    if ((await fsp.readdir(upper)).length === 0) return null;
    if (s.epoch !== null) await clampMtimes(upper, s.epoch);
    const { diffId, size } = await d.writeLayer((out) => packUpper(upper, out));
    const chainId = chainIds(s.chainId ? [s.chainId, diffId] : [diffId]).at(-1)!; // sha256(parent chain + " " + diff)
    await d.snapshots.commitActive(key, { chainId, parent: s.chainId, diffId, size });
    return { diffId, chainId };
  } catch (e) {
    if (s.signal.aborted) throw invalidArgument(`build canceled: ${errorMessage(s.signal.reason ?? e)}`);
    throw e;
  } finally {
    if (mounted) await d.mounter.unmount(rootfs).catch(() => undefined);
    await d.snapshots.remove(key).catch(() => undefined);
    await fsp.rm(bundle, { recursive: true, force: true });
  }
}

/** A cache mount's directory: persistent per id, under the builder's root. */
export async function cacheMountDir(root: string, m: MountSpec): Promise<string> {
  const id = m['id'] || m['target']!;
  const dir = join(root, 'cache-mounts', createHash('sha256').update(id).digest('hex').slice(0, 32));
  await fsp.mkdir(join(root, 'cache-mounts'), { recursive: true });
  try {
    await fsp.mkdir(dir, { recursive: false, mode: m['mode'] ? parseInt(m['mode'], 8) : 0o755 });
    if (m['uid'] || m['gid']) await fsp.chown(dir, Number(m['uid'] ?? 0), Number(m['gid'] ?? 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return dir;
}
