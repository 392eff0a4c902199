/**
 * The daemon's state is private to root (the CVE-2021-41091 class): a host user must not reach a
 * container's files by their host path (a setuid binary made inside a container would run as root),
 * nor read berth.db or a bundle's config.json (every container's environment, secrets included).
 *
 * dockerd's rule, which berth follows (no user namespaces, so the group is root's own):
 *   <root>             0710 root:root      <exec-root>        0710 root:root
 *   <root>/containers  0710                <exec-root>/*      0700
 *   <root>/snapshots   0710                <root>/snapshots/* 0700
 *   <root>/volumes     0700                other <root>/*     0700
 *   berth.db, -wal, -shm 0600 (metadata/db.ts creates them so)
 * Nothing deeper is walked: with the top-level directories closed, what lies below is out of
 * reach whatever its own mode, and start-up does not grow with the number of containers.
 * Directories are created with their mode (mkdir's mode), so there is no window where they are open.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { log } from '../base/log.js';
import { errorMessage } from '../base/errors.js';

/** Mode of a directory of the root or exec-root that others must not traverse. */
export const TOP_DIR_MODE = 0o710;
/** Mode of the directories berth keeps below them. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of files that may hold secrets (records, bundles, process specs). */
export const PRIVATE_FILE_MODE = 0o600;

const TOP_SUBDIRS: Record<string, number> = { containers: TOP_DIR_MODE, snapshots: TOP_DIR_MODE };

async function tighten(path: string, mode: number, chown: boolean): Promise<void> {
  try {
    const st = await fsp.lstat(path);
    if (st.isSymbolicLink()) return; // never follow a link planted in the root
    if (chown && (st.uid !== 0 || st.gid !== 0)) await fsp.lchown(path, 0, 0);
    if ((st.mode & 0o7777) !== mode) await fsp.chmod(path, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      log.warn('cannot make daemon state private', { path, err: errorMessage(e) });
  }
}

/** Creates the root and the exec-root closed to others (0710 root:root), or closes them if they exist. */
export async function makeStateDirs(root: string, execRoot: string): Promise<void> {
  await fsp.mkdir(root, { recursive: true, mode: TOP_DIR_MODE });
  await fsp.mkdir(execRoot, { recursive: true, mode: TOP_DIR_MODE });
  await fsp.mkdir(join(root, 'containers'), { recursive: true, mode: TOP_DIR_MODE });
  await closeState(root, execRoot);
}

/**
 * Closes an existing install at daemon start (modes loosened by hand, or by an older berth): the
 * root and the exec-root 0710 root:root, their direct subdirectories 0700 (containers/ and
 * snapshots/ 0710, as dockerd's), snapshots/* 0700, berth.db* 0600. Idempotent; a bounded
 * number of chmods, whatever the number of containers. Run it again after the services made
 * their directories.
 */
export async function closeState(root: string, execRoot: string): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  await Promise.all([tighten(root, TOP_DIR_MODE, asRoot), tighten(execRoot, TOP_DIR_MODE, asRoot)]);
  const jobs: Array<Promise<void>> = [];
  for (const ent of await fsp.readdir(root, { withFileTypes: true })) {
    const p = join(root, ent.name);
    if (ent.isDirectory()) jobs.push(tighten(p, TOP_SUBDIRS[ent.name] ?? PRIVATE_DIR_MODE, false));
    else if (ent.isFile() && /^berth\.db(-wal|-shm|-journal)?$/.test(ent.name))
      jobs.push(tighten(p, PRIVATE_FILE_MODE, false));
  }
  for (const ent of await fsp.readdir(join(root, 'snapshots'), { withFileTypes: true }).catch(() => []))
    if (ent.isDirectory()) jobs.push(tighten(join(root, 'snapshots', ent.name), PRIVATE_DIR_MODE, false));
  for (const ent of await fsp.readdir(execRoot, { withFileTypes: true }))
    if (ent.isDirectory()) jobs.push(tighten(join(execRoot, ent.name), PRIVATE_DIR_MODE, false));
  await Promise.all(jobs);
}
