/**
 * COPY and ADD without a container: the inputs are described for the cache key (describeInputs),
 * and on a miss planned (paths in the image, headers) and written straight into a layer tar.
 * Directories above the destination keep the metadata they have in the parent image (what an
 * overlay copy-up would record); the ones COPY creates get 0755.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { once } from 'node:events';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { errorMessage, invalidArgument } from '../base/errors.js';
import { cleanEntryName } from '../archive/extract.js';
import { isTarHeader, readTar } from '../archive/tar-reader.js';
import { addEntry, packInto, type Headers } from '../archive/pack.js';
import { lstatInRoot } from '../archive/rooted.js';
import { cleanPath } from '../spec/dockerignore.js';
import { archiveKind, hashFile, type Source } from './context.js';

export interface Owner {
  uid: number;
  gid: number;
}

/** One thing to copy: a matched source, a downloaded URL, or a here-document. */
export type CopyInput =
  | { kind: 'source'; source: Source }
  | { kind: 'file'; name: string; abs: string; mtime: Date; mode: number }
  | { kind: 'inline'; name: string; content: Buffer };

export interface CopyRequest {
  inputs: CopyInput[];
  /** destination in the image: absolute, a trailing `/` kept */
  dest: string;
  /** the parent image's filesystem (read only), for existing directories */
  view: string;
  chown: Owner | null;
  chmod: number | null;
  /** ADD: local tar archives are extracted into the destination */
  extract: boolean;
  /** SOURCE_DATE_EPOCH (seconds): mtimes after it are clamped to it */
  epoch: number | null;
  /** the build's clock (ms since the epoch): the mtime of directories the copy makes */
  now: number;
}

interface Entry {
  header: Headers;
  /** file content: a path, or bytes */
  abs?: string;
  bytes?: Buffer;
}

export interface CopyPlan {
  entries: Entry[];
  archives: Array<{ abs: string; kind: 'gzip' | 'bzip2' | 'xz' | 'tar'; dir: string }>;
}

const rel = (abs: string) => abs.replace(/^\/+/, '');

/** lstat of `rel` in the image view `view`, its parents resolved inside the view (never the host's). */
async function lstatOrNull(view: string, rel: string): Promise<Stats | null> {
  try {
    return lstatInRoot(view, rel);
  } catch {
    return null;
  }
}

export async function planCopy(req: CopyRequest): Promise<CopyPlan> {
  const now = new Date(req.now);
  const clamp = (d: Date) => (req.epoch !== null && d.getTime() > req.epoch * 1000 ? new Date(req.epoch * 1000) : d);
  const owner = req.chown ?? { uid: 0, gid: 0 };
  const many = req.inputs.length > 1 || req.inputs.some((i) => i.kind === 'source' && i.source.path.includes('*'));
  const destStat = await lstatOrNull(req.view, req.dest);
  const destIsDir = req.dest.endsWith('/') || (destStat?.isDirectory() ?? false);
  if (many && !destIsDir)
    throw invalidArgument(
      'When using COPY with more than one source file, the destination must be a directory and end with a /',
    );
  const dest = posix.normalize(req.dest);
  const entries = new Map<string, Entry>();
  const archives: CopyPlan['archives'] = [];
  const modeOf = (st: Stats) => req.chmod ?? st.mode & 0o7777;
  const put = (e: Entry) => entries.set(e.header.name.replace(/\/$/, ''), e);
  const fileTarget = (name: string) => (destIsDir ? posix.join(dest, name) : dest);
  for (const input of req.inputs) {
    if (input.kind === 'inline') {
      put({
        header: {
          name: rel(fileTarget(input.name)),
          type: 'file',
          size: input.content.length,
          mode: req.chmod ?? 0o644,
          ...owner,
          mtime: clamp(now),
        },
        bytes: input.content,
      });
      continue;
    }
    if (input.kind === 'file') {
      put({
        header: {
          name: rel(fileTarget(input.name)),
          type: 'file',
          size: (await fsp.stat(input.abs)).size,
          mode: req.chmod ?? input.mode,
          ...owner,
          mtime: clamp(input.mtime),
        },
        abs: input.abs,
      });
      continue;
    }
    const { source } = input;
    if (!source.isDir && req.extract) {
      const kind = await archiveKind(source.files[0]!.abs);
      if (kind && (kind === 'tar' || (await decompressesToTar(source.files[0]!.abs, kind)))) {
        archives.push({ abs: source.files[0]!.abs, kind, dir: rel(dest) });
        continue;
      }
    }
    const base = source.isDir ? dest : fileTarget(basename(source.path));
    for (const f of source.files) {
      const name = rel(f.rel ? posix.join(base, f.rel) : base);
      if (!name) continue; // the root directory itself
      const common = { name, mode: modeOf(f.st), ...owner, mtime: clamp(f.st.mtime) };
      if (f.st.isDirectory()) put({ header: { ...common, name: `${name}/`, type: 'directory' } });
      else if (f.st.isSymbolicLink())
        put({ header: { ...common, type: 'symlink', linkname: await fsp.readlink(f.abs) } });
      else if (f.st.isFile()) put({ header: { ...common, type: 'file', size: f.st.size }, abs: f.abs });
    }
  }
  await addParents(entries, [...entries.keys(), ...archives.map((a) => a.dir)], req.view, owner, clamp(now));
  for (const a of archives)
    if (a.dir && !entries.has(a.dir))
      await addParents(entries, [`${a.dir}/x`], req.view, { uid: 0, gid: 0 }, clamp(now));
  return finishPlan(entries, archives);
}

/**
 * Adds the directories above each name: with the metadata they have in the parent image (as an
 * overlay copy-up would record it), or created with 0755 owned by `owner` (BuildKit's rule).
 */
async function addParents(
  entries: Map<string, Entry>,
  names: string[],
  view: string,
  owner: Owner,
  mtime: Date,
): Promise<void> {
  for (const name of names) {
    for (let d = posix.dirname(name); d !== '.' && d !== '/' && d !== ''; d = posix.dirname(d)) {
      if (entries.has(d)) continue;
      const st = await lstatOrNull(view, d);
      if (st && !st.isDirectory())
        throw invalidArgument(`cannot copy to /${name}: /${d} is not a directory in the image`);
      entries.set(d, {
        header: st
          ? { name: `${d}/`, type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime }
          : { name: `${d}/`, type: 'directory', mode: 0o755, ...owner, mtime },
      });
    }
  }
}

/** WORKDIR's layer: the directory and its missing parents (null when it exists in the image). */
export async function planMkdir(
  view: string,
  dir: string,
  owner: Owner,
  epoch: number | null,
  clockNow: number,
): Promise<CopyPlan | null> {
  if (await lstatOrNull(view, dir)) return null;
  const entries = new Map<string, Entry>();
  const now = new Date(epoch !== null ? epoch * 1000 : clockNow);
  await addParents(entries, [`${rel(dir)}/x`], view, owner, now);
  return finishPlan(entries, []);
}

function finishPlan(entries: Map<string, Entry>, archives: CopyPlan['archives']): CopyPlan {
  return { entries: [...entries.values()].sort((x, y) => (x.header.name < y.header.name ? -1 : 1)), archives };
}

/**
 * What the cache key and the history need of COPY's inputs, without the parent image: a digest
 * of names, types, modes and contents (never mtimes: a fresh checkout still hits), and dockerd's
 * `file:<hex>` / `dir:<hex>` / `multi:<hex>` summary of the contents.
 */
export async function describeInputs(inputs: CopyInput[]): Promise<{ digest: string; summary: string }> {
  const h = createHash('sha256');
  const content = createHash('sha256');
  const add = (line: string, hash: string) => {
    h.update(`${line}\0${hash}\n`);
    if (hash) content.update(hash);
  };
  for (const i of inputs) {
    if (i.kind === 'inline') add(`inline\0${i.name}`, createHash('sha256').update(i.content).digest('hex'));
    else if (i.kind === 'file') add(`file\0${i.name}\0${i.mode}`, await hashFile(i.abs));
    else {
      for (const f of i.source.files) {
        const type = f.st.isDirectory()
          ? 'dir'
          : f.st.isSymbolicLink()
            ? `link:${await fsp.readlink(f.abs)}`
            : f.st.isFile()
              ? 'file'
              : 'other';
        add(`${i.source.path}\0${f.rel}\0${type}\0${f.st.mode & 0o7777}`, type === 'file' ? await hashFile(f.abs) : '');
      }
    }
  }
  const kind = inputs.length > 1 ? 'multi' : inputs[0]?.kind === 'source' && inputs[0].source.isDir ? 'dir' : 'file';
  return { digest: h.digest('hex'), summary: `${kind}:${content.digest('hex')}` };
}

/** The longest an `xz -d`/`bzip2 -d` of one ADD archive may run. */
const DECOMPRESS_DEADLINE_MS = 10 * 60_000;

/**
 * The archive's tar bytes. A decompressor that fails (a truncated or corrupt file, a wrong
 * format) makes the stream fail, never end early; its process is killed when the stream is
 * destroyed and at its deadline.
 */
function decompressor(abs: string, kind: 'gzip' | 'bzip2' | 'xz' | 'tar'): Readable {
  const file = createReadStream(abs);
  if (kind === 'tar') return file;
  if (kind === 'gzip') {
    const gz = createGunzip();
    file.on('error', (e) => gz.destroy(e));
    return file.pipe(gz);
  }
  const out = new PassThrough();
  const p = spawn(kind === 'xz' ? 'xz' : 'bzip2', ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const deadline = setTimeout(() => p.kill('SIGKILL'), DECOMPRESS_DEADLINE_MS);
  p.on('error', (e) => out.destroy(e));
  p.stdin.on('error', () => undefined); // EPIPE when the decompressor stops early; its exit status says why
  file.on('error', (e) => out.destroy(e));
  p.stdout.pipe(out, { end: false });
  p.on('close', (code, signal) => {
    clearTimeout(deadline);
    if (code === 0) out.end();
    else out.destroy(invalidArgument(`${kind} -d failed (${signal ?? `exit ${code}`}): not a valid ${kind} file`));
  });
  out.on('close', () => {
    file.destroy();
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  file.pipe(p.stdin);
  return out;
}

/**
 * Whether a compressed file holds a tar (its first 512 decompressed bytes are a tar header). As
 * dockerd does, ADD copies anything else (`x.tar.xz.gz`, an `.xz` of a text file, a corrupt
 * compressed file) as a plain file.
 */
async function decompressesToTar(abs: string, kind: 'gzip' | 'bzip2' | 'xz'): Promise<boolean> {
  const input = decompressor(abs, kind);
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of input as AsyncIterable<Buffer>) {
      parts.push(c);
      n += c.length;
      if (n >= 512) break;
    }
  } catch {
    /* not decodable: not an archive */
  } finally {
    input.destroy();
  }
  return isTarHeader(Buffer.concat(parts));
}

const PACK_TYPES = {
  file: 'file',
  link: 'link',
  symlink: 'symlink',
  char: 'character-device',
  block: 'block-device',
  directory: 'directory',
  fifo: 'fifo',
} as const;

/** Writes one entry with a body into the pack, with backpressure; rejects on any error of either side. */
async function packEntry(pack: tar.Pack, header: Headers, body: AsyncIterable<Buffer> | null): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry(header, (err) => (err ? reject(err) : resolve())) as unknown as Writable;
    entry.on('error', reject);
    if (!body) {
      entry.end();
      return;
    }
    void (async () => {
      for await (const c of body) if (!entry.write(c)) await once(entry, 'drain');
      entry.end();
    })().catch((e: unknown) => {
      entry.destroy(e instanceof Error ? e : new Error(String(e)));
      reject(e);
    });
  });
}

/**
 * Re-emits the members of an archive under `dir` (ownership and modes as in the archive). A
 * member that leaves the archive's root, a truncated or undecodable archive is InvalidArgument;
 * what the members say is applied later by the layer extractor, inside the layer.
 */
async function copyArchive(pack: tar.Pack, a: CopyPlan['archives'][number]): Promise<void> {
  const input = decompressor(a.abs, a.kind);
  try {
    for await (const { header: h, body } of readTar(input)) {
      const name = cleanEntryName(h.name, `ADD archive ${basename(a.abs)}`);
      if (name === '') continue;
      const header: Headers = {
        name: a.dir ? `${a.dir}/${name}` : name,
        type: PACK_TYPES[h.type],
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: new Date(h.mtimeMs),
        size: h.type === 'file' ? h.size : 0,
        devmajor: h.devmajor,
        devminor: h.devminor,
      };
      if (h.type === 'symlink') header.linkname = h.linkname;
      if (h.type === 'link') {
        const target = cleanEntryName(h.linkname, `ADD archive ${basename(a.abs)}`);
        header.linkname = a.dir ? `${a.dir}/${target}` : target;
      }
      await packEntry(pack, header, h.type === 'file' ? body() : null);
    }
  } catch (e) {
    throw invalidArgument(`ADD: cannot extract ${basename(a.abs)}: ${errorMessage(e)}`, e);
  } finally {
    input.destroy();
  }
}

/** Writes the planned layer as a tar to `out`. */
export async function writeCopyLayer(plan: CopyPlan, out: Writable): Promise<void> {
  const { pack, done } = packInto(out);
  try {
    for (const e of plan.entries) {
      const bytes = e.bytes;
      if (bytes)
        await new Promise<void>((resolve, reject) =>
          pack.entry(e.header, bytes, (err) => (err ? reject(err) : resolve())),
        );
      else await addEntry(pack, e.header, e.abs ?? null);
    }
    for (const a of plan.archives) await copyArchive(pack, a);
  } catch (e) {
    (pack as unknown as { destroy(e?: Error): void }).destroy(); // the caller aborts `out`; nothing more is written
    throw e;
  }
  pack.finalize();
  await done;
}
