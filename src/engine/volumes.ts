/**
 * Volume verbs: list, inspect, create, remove, prune, each with its event. The bytes a prune frees
 * are measured here (`du`, with a deadline).
 */
import { execFile } from 'node:child_process';
import { parseVolumeCreate } from '../spec/volume-api.js';
import type { VolumeRecord } from '../volume/manager.js';
import type { Filters } from './filters.js';
import { labelsMatch } from './filters.js';
import type { Engine } from './engine.js';

export type { VolumeRecord };

/** `du` gets this long per volume; a volume it cannot measure in time counts 0 bytes. */
const DU_DEADLINE_MS = 60_000;

export class VolumeVerbs {
  constructor(private readonly e: Engine) {}

  /** `docker volume ls` with dockerd's filters (name, driver, dangling, label). */
  list(f: Filters): VolumeRecord[] {
    let list = this.e.volumes.list();
    if (f['name']?.length) list = list.filter((v) => f['name']!.some((n) => v.Name.includes(n)));
    if (f['driver']?.length) list = list.filter((v) => f['driver']!.includes(v.Driver));
    if (f['dangling']?.length)
      list = list.filter(
        (v) =>
          (f['dangling']![0] === 'true' || f['dangling']![0] === '1') === (this.e.volumeUsers(v.Name).length === 0),
      );
    if (f['label']?.length) list = list.filter((v) => labelsMatch(f['label'], v.Labels));
    return list;
  }

  inspect(name: string): VolumeRecord {
    return this.e.volumes.get(name);
  }

  async create(body: unknown): Promise<VolumeRecord> {
    const v = await this.e.volumes.create(parseVolumeCreate(body));
    this.e.events.emit('volume', 'create', v.Name, { driver: v.Driver });
    return v;
  }

  async remove(name: string, force: boolean): Promise<void> {
    await this.e.volumes.remove(name, this.e.volumeUsers(name), force);
    this.e.events.emit('volume', 'destroy', name, {});
  }

  /** Removes unused volumes: anonymous ones only unless `all`, matching `label` and not `label!` filters. */
  async prune(f: Filters): Promise<{ deleted: string[]; space: number }> {
    const all = f['all']?.[0] === 'true' || f['all']?.[0] === '1';
    const deleted: string[] = [];
    let space = 0;
    for (const v of this.e.volumes.list()) {
      if (this.e.volumeUsers(v.Name).length) continue;
      if (!all && !v.anonymous) continue;
      if (f['label']?.length && !labelsMatch(f['label'], v.Labels)) continue;
      if (f['label!']?.some((l) => labelsMatch([l], v.Labels))) continue; // `label!=k[=v]`: not those
      space += await duProcess(v.Mountpoint);
      await this.e.volumes.remove(v.Name, []);
      this.e.events.emit('volume', 'destroy', v.Name, {});
      deleted.push(v.Name);
    }
    return { deleted, space };
  }
}

/** `du -sb PATH` in its own process under a deadline (0 when it fails). */
export function duProcess(path: string): Promise<number> {
  if (!path) return Promise.resolve(0);
  return new Promise((resolve) =>
    execFile('du', ['-sb', path], { timeout: DU_DEADLINE_MS, killSignal: 'SIGKILL' }, (err, out) =>
      resolve(err ? 0 : Number(out.split('\t')[0]) || 0),
    ),
  );
}
