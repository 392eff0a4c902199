/**
 * berth's CNI result cache (libcni's own is /var/lib/cni/results): one record per (container id,
 * interface) of an ADD not yet DEL'd, written before the first plugin runs and again with the
 * result, so that a DEL (after a crash half-way too) runs with what the ADD ran with. Root only
 * (0700 dir, 0600 files); a record lands whole or not at all.
 */
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { failedPrecondition } from '../base/errors.js';
import { exists } from '../base/fs.js';
import { parseCacheRecord, type CniCacheRecord } from '../spec/cni.js';

export class CniCache {
  private dirMade = false;

  /** `dir`: the cache dir (`/var/lib/berth/cni`); records go to its results/ */
  constructor(private readonly dir: string) {}

  /** The record's file (results/ made 0700 on first use). */
  async file(containerId: string, ifName: string): Promise<string> {
    const dir = join(this.dir, 'results');
    // once per daemon (three fs calls fewer on every ADD); made again if it went meanwhile
    if (!this.dirMade || !(await exists(dir))) {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      await fsp.chmod(this.dir, 0o700);
      await fsp.chmod(dir, 0o700);
      this.dirMade = true;
    }
    return join(dir, `${containerId}-${ifName}.json`);
  }

  /** The record of an attachment; undefined when there is none. */
  async read(containerId: string, ifName: string): Promise<CniCacheRecord | undefined> {
    const file = await this.file(containerId, ifName);
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

  /** Writes `rec` at `file` (from `file()`), replacing what was there. */
  write(file: string, rec: CniCacheRecord): Promise<void> {
    return writeFileReplace(file, JSON.stringify(rec), 0o600);
  }
}

/** A namespace's identity, `<dev>:<inode>` (empty when the path names none). */
export async function netnsId(path: string): Promise<string> {
  try {
    const st = await fsp.stat(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return '';
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
