/**
 * Checkpoints on disk: `<dir>/<name>/` (default dir `<container dir>/checkpoints`) holding CRIU's
 * images and `berth.json` (CheckpointMeta). A name is checked before it becomes a path. A
 * checkpoint whose berth.json is missing does not exist (NotFound); one whose berth.json cannot be
 * read or parsed is corrupt, and says so (FailedPrecondition, or the read's own category), never
 * "does not exist".
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import {
  BerthError,
  codeOfErrno,
  errorMessage,
  failedPrecondition,
  invalidArgument,
  notFound,
} from '../base/errors.js';
import { isObject } from '../base/json.js';
import type { CheckpointDeps, ContainerView } from './deps.js';

export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface CheckpointMeta {
  created: string;
  container: string;
  /** network id -> the IPv4 address the process had */
  addresses: Record<string, string>;
  tcpEstablished: boolean;
  /** a pre-dump (memory copied while running; not restorable by itself) */
  preDump?: boolean;
  /** the pre-dump whose pages this checkpoint does not repeat (CRIU's `parent` link) */
  parent?: string;
  /** post-copy: the memory pages are not in the images but served by a page server at ADDRESS:PORT */
  pageServer?: string;
}

export function checkName(name: string): void {
  if (!NAME_RE.test(name)) throw invalidArgument(`invalid checkpoint name: ${JSON.stringify(name)}`);
}

export function checkpointDir(
  deps: Pick<CheckpointDeps, 'containerDir'>,
  c: ContainerView,
  dir?: string | null,
): string {
  return dir || join(deps.containerDir(c.id), 'checkpoints');
}

/** berth.json's fields, checked: what a restore and an export rely on (null when they are not there). */
export function parseMeta(v: unknown): CheckpointMeta | null {
  if (!isObject(v) || !isObject(v['addresses']) || typeof v['tcpEstablished'] !== 'boolean') return null;
  if (!Object.values(v['addresses']).every((a) => typeof a === 'string')) return null;
  for (const k of ['created', 'container', 'parent', 'pageServer'] as const)
    if (v[k] !== undefined && typeof v[k] !== 'string') return null;
  if (v['preDump'] !== undefined && typeof v['preDump'] !== 'boolean') return null;
  return v as unknown as CheckpointMeta;
}

/**
 * A checkpoint's directory and metadata. NotFound when there is none of that name; a berth.json
 * that cannot be read or is not valid is a distinct error that names the file.
 */
export async function readCheckpoint(
  deps: Pick<CheckpointDeps, 'containerDir'>,
  c: ContainerView,
  name: string,
  dir?: string | null,
): Promise<{ path: string; meta: CheckpointMeta }> {
  checkName(name);
  const path = join(checkpointDir(deps, c, dir), name);
  const file = join(path, 'berth.json');
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code ?? '';
    if (errno === 'ENOENT' || errno === 'ENOTDIR')
      throw notFound(`checkpoint ${name} does not exist for container ${c.name}`);
    const code = codeOfErrno(errno);
    throw new BerthError(
      code === 'NotFound' ? 'Internal' : code,
      `checkpoint ${name} of container ${c.name}: cannot read ${file}: ${errorMessage(e)}`,
      { cause: e },
    );
  }
  let meta: CheckpointMeta | null;
  try {
    meta = parseMeta(JSON.parse(text));
  } catch (e) {
    throw corrupt(name, c, file, errorMessage(e));
  }
  if (!meta) throw corrupt(name, c, file, 'not a checkpoint description');
  return { path, meta };
}

const corrupt = (name: string, c: ContainerView, file: string, why: string) =>
  failedPrecondition(
    `checkpoint ${name} of container ${c.name} is corrupt (${file}: ${why}): remove it and checkpoint again`,
  );

export async function writeMeta(path: string, meta: CheckpointMeta): Promise<void> {
  await fsp.writeFile(join(path, 'berth.json'), JSON.stringify(meta), { mode: 0o600 });
}
