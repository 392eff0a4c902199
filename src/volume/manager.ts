/**
 * Named and anonymous volumes. The `local` driver keeps a volume's data in
 * `<root>/volumes/<name>/_data`; with options (`type`, `device`, `o`) it mounts that filesystem
 * there while a container uses it, as Docker's local driver does. Other drivers are plugins
 * (../plugins/drivers.ts). Records live in SQLite (`volumes`); which containers use a volume is derived
 * from the containers' records, so it cannot drift.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../metadata/db.js';
import { migrate } from '../metadata/db.js';
import { conflict, invalidArgument, isBerthError, notFound } from '../base/errors.js';
import { isMountPoint, MNT_DETACH, mount, umount } from '../base/syscalls.js';
import { systemClock, type Clock } from '../base/clock.js';
import type { VolumeDriver } from '../plugins/interfaces.js';

export type { VolumeDriver } from '../plugins/interfaces.js';

const MIGRATIONS = [`CREATE TABLE volumes (name TEXT PRIMARY KEY, doc TEXT NOT NULL)`];
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export interface VolumeRecord {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  Scope: 'local';
  /** made for a container (an image VOLUME or `-v /path`): removed with it by `rm -v` / `--rm` */
  anonymous: boolean;
  /** created without Labels / DriverOpts: dockerd shows null for them then (`{}` when sent empty) */
  noLabels?: true;
  noOptions?: true;
}

export class VolumeManager {
  private readonly dir: string;
  /** driver name -> plugin client (set by the plugin registry) */
  drivers: (name: string) => Promise<VolumeDriver>;

  constructor(
    root: string,
    private readonly db: Db,
    private readonly clock: Clock = systemClock,
  ) {
    this.dir = join(root, 'volumes');
    migrate(db, 'volumes', MIGRATIONS);
    this.drivers = async (name) => {
      throw notFound(`plugin "${name}" not found`);
    };
  }

  async init(): Promise<void> {
    // closed to others (with the root): a host user must not reach volume data by its host path
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fsp.chmod(this.dir, 0o700);
  }

  list(): VolumeRecord[] {
    return (this.db.prepare('SELECT doc FROM volumes ORDER BY name').all() as Array<{ doc: string }>).map(
      (r) => JSON.parse(r.doc) as VolumeRecord,
    );
  }

  find(name: string): VolumeRecord | undefined {
    const row = this.db.prepare('SELECT doc FROM volumes WHERE name = ?').get(name) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as VolumeRecord) : undefined;
  }

  get(name: string): VolumeRecord {
    const v = this.find(name);
    if (!v) throw notFound(`get ${name}: no such volume`);
    return v;
  }

  dataDir(name: string): string {
    return join(this.dir, name, '_data');
  }

  /**
   * `volume create` (and `-v name:/path` of a volume that does not exist): idempotent for the same
   * name and driver, as Docker. An anonymous volume gets a random 64-hex name.
   */
  async create(
    o: { Name?: string; Driver?: string; DriverOpts?: Record<string, string>; Labels?: Record<string, string> },
    anonymous = false,
  ): Promise<VolumeRecord> {
    const name = o.Name || randomBytes(32).toString('hex');
    const driver = o.Driver || 'local';
    // dockerd looks the driver up first (404 "create xy: error looking up volume plugin nope: ...")
    const plugin =
      driver === 'local' || this.find(name)
        ? null
        : await this.drivers(driver).catch((e: unknown) => {
            if (isBerthError(e, 'NotFound'))
              throw notFound(`create ${name}: error looking up volume plugin ${driver}: ${e.message}`, e);
            throw e;
          });
    if (name.length === 1)
      throw invalidArgument(
        `create ${name}: volume name is too short, names should be at least two alphanumeric characters`,
      );
    if (!NAME_RE.test(name))
      throw invalidArgument(
        `create ${name}: "${name}" includes invalid characters for a local volume name, ` +
          'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
      );
    const existing = this.find(name);
    if (existing) {
      if (o.Driver && existing.Driver !== o.Driver)
        throw conflict(`create ${name}: volume name is already in use with driver "${existing.Driver}"`);
      return existing;
    }
    const opts = o.DriverOpts ?? {};
    if (driver === 'local') {
      for (const k of Object.keys(opts))
        if (!['type', 'device', 'o', 'size'].includes(k))
          throw invalidArgument(`create ${name}: invalid option key: "${k}"`);
      if ((opts['type'] || opts['device']) && !(opts['type'] && opts['device']))
        throw invalidArgument(`create ${name}: the local driver needs both type and device options`);
    }
    const rec: VolumeRecord = {
      Name: name,
      Driver: driver,
      Mountpoint: driver === 'local' ? this.dataDir(name) : '',
      CreatedAt: new Date(this.clock.now()).toISOString(),
      Labels: o.Labels ?? {},
      Options: opts,
      Scope: 'local',
      anonymous,
      ...(o.Labels ? {} : { noLabels: true as const }),
      ...(o.DriverOpts ? {} : { noOptions: true as const }),
    };
    if (driver === 'local') await fsp.mkdir(this.dataDir(name), { recursive: true, mode: 0o755 });
    else await (plugin ?? (await this.drivers(driver))).create(name, opts);
    try {
      this.db.prepare('INSERT INTO volumes (name, doc) VALUES (?, ?)').run(name, JSON.stringify(rec));
    } catch (e) {
      if (driver === 'local') await fsp.rm(join(this.dir, name), { recursive: true, force: true });
      throw e;
    }
    return rec;
  }

  /** `volume rm`: refused while a container uses it (`users` names them) unless force only for unused. */
  async remove(name: string, users: string[], force = false): Promise<void> {
    const v = this.find(name);
    if (!v) {
      if (force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    if (users.length) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    if (v.Driver === 'local') {
      const data = this.dataDir(name);
      if (isMountPoint(data)) umount(data, MNT_DETACH);
      await fsp.rm(join(this.dir, name), { recursive: true, force: true });
    } else await (await this.drivers(v.Driver)).remove(name);
    this.db.prepare('DELETE FROM volumes WHERE name = ?').run(name);
  }

  /**
   * The host path to bind for a container starting with this volume. The local driver with
   * options mounts its filesystem first (once); a plugin is asked to mount.
   */
  async mountFor(name: string, containerId: string): Promise<string> {
    const v = this.get(name);
    if (v.Driver !== 'local') return (await this.drivers(v.Driver)).mount(name, containerId);
    const data = this.dataDir(name);
    if (v.Options['type'] && !isMountPoint(data)) {
      await fsp.mkdir(data, { recursive: true });
      let flags = 0;
      const data2: string[] = [];
      for (const o of (v.Options['o'] ?? '').split(',').filter(Boolean)) {
        if (o === 'bind') flags |= 4096;
        else if (o === 'ro') flags |= 1;
        else data2.push(o);
      }
      if (v.Options['size']) data2.push(`size=${v.Options['size']}`);
      mount(v.Options['device']!, data, v.Options['type'], flags, data2.join(','));
    }
    return data;
  }

  /** Called when a container using the volume stops; `stillUsed` says whether a running one still does. */
  async unmountFor(name: string, containerId: string, stillUsed: boolean): Promise<void> {
    const v = this.find(name);
    if (!v) return;
    if (v.Driver !== 'local') return (await this.drivers(v.Driver)).unmount(name, containerId);
    const data = this.dataDir(name);
    if (v.Options['type'] && !stillUsed && existsSync(data) && isMountPoint(data)) umount(data, MNT_DETACH);
  }
}
