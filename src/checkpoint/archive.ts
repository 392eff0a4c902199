/**
 * Checkpoint archives: one tar (gzip'd unless asked not to) that any berthd with the image (or able
 * to pull it) can import: `berth-export.json` (ExportDoc), `rootfs-diff.tar` (the writable layer as
 * a layer tar), `checkpoint/` (CRIU's images), `checkpoint-parent/` (the pre-dump they build on,
 * unless the target has it staged) and, with volumes, `volumes/<i>.tar`. Also the staging of a
 * pre-dump for migration's pre-copy. Every helper process (tar, pigz, cp) runs through base/proc.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { errorMessage, failedPrecondition, invalidArgument } from '../base/errors.js';
import { runCommand } from '../base/proc.js';
import { isGzip } from '../archive/layer.js';
import type { ArchiveDeps, ContainerView } from './deps.js';
import { type CheckpointMeta, readCheckpoint } from './store.js';

/** The description inside an exported checkpoint archive. */
export interface ExportDoc {
  version: 1;
  name: string;
  checkpoint: string;
  image: { id: string; ref: string };
  config: ContainerView['config'];
  hostConfig: ContainerView['hostConfig'];
  /** network name -> what the container asked of it */
  networks: Array<[string, { aliases: string[]; ipv4?: string; mac?: string }]>;
  /** network name -> the address the process had there */
  addresses: Record<string, string>;
  meta: CheckpointMeta;
  /** with --with-volumes: the local volumes it mounts, their data in `volumes/<i>.tar` */
  volumes?: Array<{
    name: string;
    destination: string;
    anonymous: boolean;
    labels: Record<string, string>;
    file: string;
  }>;
}

export interface ExportOptions {
  dir?: string | null;
  /** gzip (default); a migration on a fast link is quicker without */
  compress?: boolean;
  /** include the pre-dump the checkpoint builds on (default), unless the target has it staged */
  withParent?: boolean;
  /** carry the data of the local volumes the container mounts */
  withVolumes?: boolean;
}

/**
 * gzip for checkpoint archives: pigz when installed (parallel, and at -1 ~3x faster than gzip's
 * default on CRIU's images; the archive is still plain gzip), else gzip -1.
 */
const GZIP = existsSync('/usr/bin/pigz') ? 'pigz' : 'gzip';

/** Extracts a checkpoint archive (gzip'd or not) from a stream into `dir`. */
export async function untarStream(input: Readable, dir: string): Promise<void> {
  const gz = await isGzip(input);
  await tar(['-x', ...(gz ? ['-I', GZIP] : []), '-C', dir, '--no-same-owner', '--same-permissions'], { stdin: input });
}

export function tar(args: string[], io: { stdin?: Readable; stdout?: Writable }): Promise<void> {
  const streams = { ...(io.stdin ? { input: io.stdin } : {}), ...(io.stdout ? { output: io.stdout } : {}) };
  // a checkpoint's memory can be gigabytes, streamed at the client's pace
  return runCommand('tar', args, { ...streams, timeoutMs: 30 * 60_000 }).catch((e: unknown) => {
    throw invalidArgument(`checkpoint archive: ${errorMessage(e)}`);
  });
}

/** A copy of a directory by hard links (a plain copy when it is on another filesystem). */
async function hardlinkTree(from: string, to: string): Promise<void> {
  const [a, b] = await Promise.all([fsp.stat(from), fsp.stat(dirname(to))]).catch((e: unknown) => {
    throw invalidArgument(`checkpoint images: ${errorMessage(e)}`);
  });
  await runCommand('cp', [a.dev === b.dev ? '-al' : '-a', from, to], { timeoutMs: 10 * 60_000 }).catch((e: unknown) => {
    throw invalidArgument(`checkpoint images: ${errorMessage(e)}`);
  });
}

/** A checkpoint as one archive written to `out` (see the top of this file). */
export async function exportCheckpoint(
  deps: ArchiveDeps,
  ref: string,
  name: string,
  out: Writable,
  o: ExportOptions = {},
): Promise<void> {
  const { compress = true, withParent = true } = o;
  const c = deps.get(ref);
  const { path, meta } = await readCheckpoint(deps, c, name, o.dir);
  // volumes are checked before anything is written: a volume that cannot travel is an error up front
  const volumes = o.withVolumes
    ? (c.mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => ({ m, v: deps.volumes.get(m.Name!) }))
    : [];
  for (const { v } of volumes) {
    if (v.Driver === 'local' && !v.Options['device']) continue;
    const device = v.Options['device'] ? `, device ${v.Options['device']}` : '';
    throw failedPrecondition(
      `volume ${v.Name} (driver ${v.Driver}${device}): --with-volumes carries the data of plain local volumes only`,
    );
  }
  const staging = await fsp.mkdtemp(join(deps.root, 'tmp', 'export-'));
  const nameOf = (id: string) => deps.network(id)?.Name ?? id;
  try {
    const doc: ExportDoc = {
      version: 1,
      name: c.name,
      checkpoint: name,
      image: { id: c.imageId, ref: c.config.Image ?? '' },
      config: c.config,
      hostConfig: c.hostConfig,
      networks: (c.networks ?? []).map(([id, req]) => [nameOf(id), req]),
      addresses: Object.fromEntries(Object.entries(meta.addresses).map(([id, ip]) => [nameOf(id), ip])),
      meta,
    };
    const parts = ['berth-export.json', 'rootfs-diff.tar', 'checkpoint'];
    if (volumes.length) {
      await fsp.mkdir(join(staging, 'volumes'));
      doc.volumes = [];
      for (const [i, { m, v }] of volumes.entries()) {
        const file = `volumes/${i}.tar`;
        await tar(['-c', '-f', join(staging, file), '--numeric-owner', '-C', deps.volumes.dataDir(v.Name), '.'], {});
        doc.volumes.push({
          name: v.Name,
          destination: m.Destination,
          anonymous: Boolean(m.anonymous),
          labels: v.Labels,
          file,
        });
      }
      parts.push('volumes');
    }
    await fsp.writeFile(join(staging, 'berth-export.json'), JSON.stringify(doc));
    await deps.exportUpper(c.id, createWriteStream(join(staging, 'rootfs-diff.tar')));
    // the images go in by hard links (same filesystem: nothing is copied); a checkpoint made after a
    // pre-dump needs the pre-dump's pages too, unless the target has them already (migration)
    await hardlinkTree(path, join(staging, 'checkpoint'));
    if (meta.parent && withParent) {
      await hardlinkTree(join(path, '..', meta.parent), join(staging, 'checkpoint-parent'));
      parts.push('checkpoint-parent');
    }
    await tar(['-c', ...(compress ? ['-I', `${GZIP} -1`] : []), '-C', staging, ...parts], { stdout: out });
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

/** Where a staged pre-dump lives (`stage` is its token, checked). */
export function stageDir(root: string, token: string): string {
  return join(root, 'tmp', `stage-${token}`);
}

/** Unpacks an exported pre-dump where a later import can find it (`stage`): migration's pre-copy. */
export async function stageCheckpoint(deps: Pick<ArchiveDeps, 'root'>, input: Readable): Promise<string> {
  const token = randomBytes(12).toString('hex');
  const dir = stageDir(deps.root, token);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await untarStream(input, dir);
    if (!existsSync(join(dir, 'checkpoint'))) throw invalidArgument('not a checkpoint archive: no checkpoint images');
  } catch (e) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw e;
  }
  return token;
}
