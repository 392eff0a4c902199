/**
 * A container's mounts as the engine decides them at create: `-v`/Binds (host paths and named
 * volumes), HostConfig.Mounts (`--mount type=bind|volume|tmpfs`), `--tmpfs`, `--volumes-from`,
 * and an anonymous volume for every image VOLUME nothing else covers. Volumes that do not exist
 * are created (anonymous ones are removed again if the create fails); a new volume is filled
 * from the image's content at its path, as Docker does.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { isAbsolute, join, posix } from 'node:path';
import { errorMessage, invalidArgument } from '../base/errors.js';
import { runCommand } from '../base/proc.js';
import { isObject } from '../base/json.js';
import { RootedFs, type RootMount } from '../archive/rooted.js';
import type { HostConfig, ContainerConfig } from '../spec/engine-api.js';
import { checkVolumeName } from '../spec/volume-api.js';
import type { VolumeManager } from '../volume/manager.js';
import type { SpecInput } from '../runtime/types.js';

export interface MountRecord {
  Type: 'volume' | 'bind' | 'tmpfs';
  /** volume name */
  Name?: string;
  /** host path (bind); filled for volumes when the container starts */
  Source: string;
  Destination: string;
  RW: boolean;
  Propagation: string;
  Mode: string;
  Driver?: string;
  /** the volume was made for this container (removed with `rm -v` and `--rm`) */
  anonymous?: boolean;
  noCopy?: boolean;
  tmpfs?: { size?: number; mode?: number; options?: string[] };
}

const ROOT_DEST = "invalid specification: destination can't be '/'";

const PROPAGATION = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'];

function parseBind(spec: string): MountRecord {
  const parts = spec.split(':');
  // `-v /data` alone: an anonymous volume there (dockerd accepts it in Binds too; its Mode reads "z" there)
  if (parts.length === 1 && isAbsolute(spec) && posix.normalize(spec) !== '/')
    return {
      Type: 'volume',
      Name: '',
      Source: '',
      Destination: posix.normalize(spec),
      RW: true,
      Propagation: '',
      Mode: 'z',
    };
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1])
    throw invalidArgument(`invalid volume specification: '${spec}'`);
  const [src, dst, opts = ''] = parts as [string, string, string?];
  if (!isAbsolute(dst))
    throw invalidArgument(
      `invalid volume specification: '${spec}': invalid mount config for type "${isAbsolute(src) ? 'bind' : 'volume'}": invalid mount path: '${dst}' mount path must be absolute`,
    );
  let rw = true;
  let propagation = 'rprivate';
  let noCopy = false;
  for (const o of opts.split(',').filter(Boolean)) {
    if (o === 'ro') rw = false;
    else if (o === 'rw') rw = true;
    else if (PROPAGATION.includes(o)) propagation = o;
    else if (o === 'nocopy') noCopy = true;
    else if (o !== 'z' && o !== 'Z') throw invalidArgument(`invalid mode: ${o}`);
  }
  // dockerd: `invalid volume specification: '/tmp:/': invalid mount config for type "bind": invalid
  // specification: destination can't be '/'` (with HTTP 500 there; a 400 here, it is the client's input)
  if (posix.normalize(dst) === '/')
    throw invalidArgument(
      `invalid volume specification: '${spec}': invalid mount config for type "${isAbsolute(src) ? 'bind' : 'volume'}": ${ROOT_DEST}`,
    );
  if (isAbsolute(src))
    return {
      Type: 'bind',
      Source: posix.normalize(src),
      Destination: posix.normalize(dst),
      RW: rw,
      Propagation: propagation,
      Mode: opts,
    };
  return {
    Type: 'volume',
    Name: src,
    Source: '',
    Destination: posix.normalize(dst),
    RW: rw,
    Propagation: '',
    Mode: opts || 'z',
    noCopy,
  };
}

function parseMountObject(
  m: unknown,
  i: number,
): MountRecord & { driver?: string; driverOpts?: Record<string, string>; labels?: Record<string, string> } {
  if (!isObject(m)) throw invalidArgument(`HostConfig.Mounts[${i}]: expected an object`);
  const type = m['Type'];
  const target = m['Target'];
  if (typeof target !== 'string' || !isAbsolute(target))
    throw invalidArgument(
      `invalid mount config for type "${String(type)}": invalid mount path: '${String(target ?? '')}' mount path must be absolute`,
    );
  const source = typeof m['Source'] === 'string' ? m['Source'] : '';
  if (target.includes('\0') || source.includes('\0'))
    throw invalidArgument(`HostConfig.Mounts[${i}]: a path contains a NUL byte`);
  const rw = m['ReadOnly'] !== true;
  const dst = posix.normalize(target);
  // dockerd: `invalid mount config for type "tmpfs": invalid specification: destination can't be '/'`
  if (dst === '/' && ['bind', 'volume', 'tmpfs'].includes(String(type)))
    throw invalidArgument(`invalid mount config for type "${String(type)}": ${ROOT_DEST}`);
  if (type === 'bind') {
    if (!isAbsolute(source))
      throw invalidArgument(
        `invalid mount config for type "bind": invalid mount path: '${source}' mount path must be absolute`,
      );
    const bo = isObject(m['BindOptions']) ? m['BindOptions'] : {};
    const propagation = typeof bo['Propagation'] === 'string' && bo['Propagation'] ? bo['Propagation'] : 'rprivate';
    if (!PROPAGATION.includes(propagation))
      throw invalidArgument(`invalid mount config for type "bind": invalid propagation mode: ${propagation}`);
    if (!existsSync(source))
      throw invalidArgument(`invalid mount config for type "bind": bind source path does not exist: ${source}`);
    return {
      Type: 'bind',
      Source: posix.normalize(source),
      Destination: dst,
      RW: rw,
      Propagation: propagation,
      Mode: '',
    };
  }
  if (type === 'volume') {
    const vo = isObject(m['VolumeOptions']) ? m['VolumeOptions'] : {};
    const dc = isObject(vo['DriverConfig']) ? vo['DriverConfig'] : {};
    const rec: MountRecord & { driver?: string; driverOpts?: Record<string, string>; labels?: Record<string, string> } =
      {
        Type: 'volume',
        Name: source,
        Source: '',
        Destination: dst,
        RW: rw,
        Propagation: '',
        Mode: 'z',
        noCopy: vo['NoCopy'] === true,
      };
    if (typeof dc['Name'] === 'string' && dc['Name']) rec.driver = dc['Name'];
    if (isObject(dc['Options'])) rec.driverOpts = dc['Options'] as Record<string, string>;
    if (isObject(vo['Labels'])) rec.labels = vo['Labels'] as Record<string, string>;
    return rec;
  }
  if (type === 'tmpfs') {
    if (source) throw invalidArgument('invalid mount config for type "tmpfs": field Source must not be specified');
    const to = isObject(m['TmpfsOptions']) ? m['TmpfsOptions'] : {};
    const tmpfs: MountRecord['tmpfs'] = {};
    if (typeof to['SizeBytes'] === 'number' && to['SizeBytes'] > 0) tmpfs.size = to['SizeBytes'];
    if (typeof to['Mode'] === 'number' && to['Mode'] !== 0) {
      if (to['Mode'] > 0o7777)
        throw invalidArgument(`invalid mount config for type "tmpfs": invalid mode: ${to['Mode'].toString(8)}`);
      tmpfs.mode = to['Mode'];
    }
    return { Type: 'tmpfs', Source: '', Destination: dst, RW: rw, Propagation: '', Mode: '', tmpfs };
  }
  throw invalidArgument(`invalid mount config for type "${String(type)}": mount type unknown`);
}

/** `--tmpfs /run:size=64m,mode=1777` (HostConfig.Tmpfs). */
function parseTmpfs(dst: string, opts: string): MountRecord {
  if (!isAbsolute(dst)) throw invalidArgument(`invalid mount path: '${dst}' mount path must be absolute`);
  // dockerd: `invalid specification: destination can't be '/'`
  if (posix.normalize(dst) === '/') throw invalidArgument(ROOT_DEST);
  const tmpfs: NonNullable<MountRecord['tmpfs']> = { options: [] };
  let rw = true;
  for (const o of opts.split(',').filter(Boolean)) {
    const [k, v = ''] = o.split('=');
    if (k === 'size') {
      const m = /^(\d+)([kmg]?)$/i.exec(v);
      if (!m) throw invalidArgument(`invalid tmpfs size: ${v}`);
      tmpfs.size =
        Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2]!.toLowerCase()]!;
      if (!(tmpfs.size < 2 ** 63)) throw invalidArgument(`invalid tmpfs size: ${v}`);
    } else if (k === 'mode') {
      if (!/^[0-7]{1,4}$/.test(v)) throw invalidArgument(`invalid tmpfs mode: ${v}`);
      tmpfs.mode = parseInt(v, 8);
    } else if (k === 'ro') rw = false;
    else if (['rw', 'noexec', 'exec', 'nosuid', 'suid', 'nodev', 'dev'].includes(k!)) tmpfs.options!.push(k!);
    else throw invalidArgument(`invalid tmpfs option: ${o}`);
  }
  return { Type: 'tmpfs', Source: '', Destination: posix.normalize(dst), RW: rw, Propagation: '', Mode: opts, tmpfs };
}

/**
 * Decides the mounts of a new container and creates the volumes they need. `mountsOf(ref)` gives
 * another container's mounts (`--volumes-from`). Returns them with the names of the volumes
 * created here (to remove if the create fails later).
 */
export async function planMounts(
  vols: VolumeManager,
  hc: HostConfig,
  config: ContainerConfig,
  mountsOf: (ref: string) => MountRecord[],
): Promise<{ mounts: MountRecord[]; created: string[] }> {
  const out: Array<ReturnType<typeof parseMountObject>> = [];
  for (const b of hc.Binds ?? []) out.push(parseBind(b));
  const mounts = hc['Mounts'];
  if (mounts !== undefined && mounts !== null) {
    if (!Array.isArray(mounts)) throw invalidArgument('HostConfig.Mounts: expected an array');
    mounts.forEach((m, i) => out.push(parseMountObject(m, i)));
  }
  const tmpfs = hc['Tmpfs'];
  if (isObject(tmpfs))
    for (const [dst, opts] of Object.entries(tmpfs)) out.push(parseTmpfs(dst, typeof opts === 'string' ? opts : ''));
  const from = hc['VolumesFrom'];
  if (Array.isArray(from)) {
    for (const f of from) {
      if (typeof f !== 'string') throw invalidArgument('HostConfig.VolumesFrom: expected strings');
      const [ref = '', mode = ''] = f.split(':');
      if (mode && mode !== 'ro' && mode !== 'rw') throw invalidArgument(`invalid mode: ${mode}`);
      for (const m of mountsOf(ref))
        if (m.Type !== 'tmpfs') out.push({ ...m, RW: mode ? mode === 'rw' : m.RW, anonymous: false });
    }
  }
  const seen = new Set<string>();
  for (const m of out) {
    if (m.Destination === '/') throw invalidArgument(ROOT_DEST); // --volumes-from of a record made before this check
    if (seen.has(m.Destination)) throw invalidArgument(`Duplicate mount point: ${m.Destination}`);
    seen.add(m.Destination);
  }
  for (const dst of Object.keys(config.Volumes ?? {})) {
    const d = posix.normalize(dst);
    if (d === '/') throw invalidArgument(ROOT_DEST); // dockerd creates it (and fails at start)
    if (!seen.has(d))
      out.push({ Type: 'volume', Name: '', Source: '', Destination: d, RW: true, Propagation: '', Mode: '' });
  }
  for (const m of out) if (m.Type === 'volume' && m.Name) checkVolumeName(m.Name);
  const created: string[] = [];
  try {
    for (const m of out) {
      if (m.Type !== 'volume') continue;
      const anonymous = !m.Name;
      const existed = !!m.Name && !!vols.find(m.Name);
      const v = await vols.create(
        {
          ...(m.Name ? { Name: m.Name } : {}),
          ...(m.driver ? { Driver: m.driver } : {}),
          ...(m.driverOpts ? { DriverOpts: m.driverOpts } : {}),
          ...(m.labels ? { Labels: m.labels } : {}),
        },
        anonymous,
      );
      if (!existed) created.push(v.Name);
      m.Name = v.Name;
      m.Driver = v.Driver;
      if (anonymous) m.anonymous = true;
    }
  } catch (e) {
    for (const n of created) await vols.remove(n, [], true).catch(() => undefined);
    throw e;
  }
  return { mounts: out.map(({ driver: _d, driverOpts: _o, labels: _l, ...m }) => m), created };
}

/**
 * `-v /host/path:/ctr` of a host path that does not exist: made (a directory, 0755), as dockerd
 * makes it, so the container does not fail at start. (`--mount type=bind` must name one that exists:
 * parseMountObject refuses it at create.)
 */
export async function makeBindSources(mounts: MountRecord[]): Promise<void> {
  for (const m of mounts) {
    if (m.Type !== 'bind' || existsSync(m.Source)) continue;
    await fsp.mkdir(m.Source, { recursive: true, mode: 0o755 }).catch((e: unknown) => {
      throw invalidArgument(`error while creating mount source path '${m.Source}': ${errorMessage(e)}`);
    });
  }
}

/**
 * Fills empty new volumes from the image's files at their paths (unless nocopy). The image path is
 * walked inside the rootfs by the kernel (rooted.ts) and handed to `cp -a` as our fd
 * (/proc/<berthd>/fd/N), so no symlink in the image can point the copy at a host directory.
 */
export async function copyUp(
  vols: VolumeManager,
  mounts: MountRecord[],
  created: string[],
  rootfs: string,
): Promise<void> {
  const todo = mounts.filter(
    (m) => m.Type === 'volume' && !m.noCopy && created.includes(m.Name!) && m.Driver === 'local',
  );
  if (todo.length === 0) return;
  const fs = RootedFs.open(rootfs);
  try {
    for (const m of todo) {
      let r;
      try {
        r = fs.resolve(m.Destination, { followLast: true });
      } catch {
        continue; // not a path in the image (ENOTDIR, ELOOP...): nothing to copy, as dockerd
      }
      try {
        if (r.fd < 0 || !r.st?.isDirectory()) continue;
        const dst = vols.dataDir(m.Name!);
        if ((await fsp.readdir(dst)).length > 0) continue;
        await fsp.chmod(dst, r.st.mode & 0o7777);
        await fsp.chown(dst, r.st.uid, r.st.gid);
        await runCommand('timeout', [
          '--kill-after=10',
          String(COPY_UP_DEADLINE_S),
          'cp',
          '-a',
          '--',
          `/proc/${process.pid}/fd/${r.fd}/.`,
          `${dst}/`,
        ]).catch((e: unknown) => {
          throw invalidArgument(`copying image content into volume ${m.Name}: ${errorMessage(e)}`);
        });
      } finally {
        r.close();
      }
    }
  } finally {
    fs.close();
  }
}

const COPY_UP_DEADLINE_S = 600;

/**
 * The mounts a host-side view of the container's files must route through (rooted.ts), as dockerd
 * mounts them for `docker cp`: local volumes and binds at their destinations, and the container's
 * hostname, hosts and resolv.conf files. tmpfs mounts live only in the container's namespace and
 * are not seen (dockerd does not see them either); a plugin volume is seen only at its last source.
 */
export function rootMountsOf(
  mounts: readonly MountRecord[] | undefined,
  containerDir: string,
  dataDir: (name: string) => string,
  readonlyRootfs: boolean,
): RootMount[] {
  const out: RootMount[] = ['hostname', 'hosts', 'resolv.conf'].map((f) => ({
    destination: `/etc/${f}`,
    source: join(containerDir, f),
    readOnly: readonlyRootfs,
  }));
  for (const m of mounts ?? []) {
    if (m.Type === 'tmpfs') continue;
    const source = m.Type === 'volume' ? (m.Driver === 'local' || !m.Driver ? dataDir(m.Name!) : m.Source) : m.Source;
    if (source) out.push({ destination: m.Destination, source, readOnly: !m.RW });
  }
  return out;
}

/** The runtime mounts: `sources` has each volume's host path (resolved at start). */
export function specMounts(mounts: MountRecord[], sources: Map<string, string>): SpecInput['mounts'] {
  return mounts.map((m) => {
    if (m.Type === 'tmpfs') {
      const t = m.tmpfs ?? {};
      return {
        destination: m.Destination,
        type: 'tmpfs',
        source: 'tmpfs',
        options: [
          'nosuid',
          'nodev',
          ...(t.options ?? []),
          ...(m.RW ? [] : ['ro']),
          ...(t.size ? [`size=${t.size}`] : []),
          ...(t.mode !== undefined ? [`mode=${t.mode.toString(8)}`] : []),
        ],
      };
    }
    const source = m.Type === 'volume' ? (sources.get(m.Name!) ?? '') : m.Source;
    return {
      destination: m.Destination,
      type: 'bind',
      source,
      options: ['rbind', m.RW ? 'rw' : 'ro', m.Propagation || 'rprivate'],
    };
  });
}
