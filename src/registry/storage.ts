/**
 * The registry's filesystem storage. Content-addressed blobs shared by all repositories; a
 * repository is a directory of small link files saying which blobs, manifests and tags it has.
 * Every write lands by rename, so a reader (or a crash) sees a file whole or not at all.
 *
 *   <root>/blobs/sha256/<hex>                         blob bytes (manifests are blobs too)
 *   <root>/uploads/<uuid>/data, repo                  upload sessions
 *   <root>/repos/<name>/_blobs/<hex>                  the repository holds this blob
 *   <root>/repos/<name>/_manifests/<hex>              the repository holds this manifest (content: media type)
 *   <root>/repos/<name>/_tags/<tag>                   tag -> digest
 *   <root>/repos/<name>/_referrers/<subject hex>/<hex> descriptor JSON of a manifest whose subject is that digest
 *
 * Underscore-prefixed directories cannot collide with a name component (those start with [a-z0-9]).
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream, promises as fsp, statSync, utimesSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { systemClock, type Clock } from '../base/clock.js';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import { isSha256 } from '../spec/distribution.js';
import { appendBody, sendFile } from './blob-io.js';
import { fault, isAbsent, storageFailure, unlessAbsent } from './errors.js';

/** The hex of a sha256 digest, the name of its files; anything else never becomes a path. */
const hexOf = (digest: string) => {
  if (!isSha256(digest)) throw fault('DIGEST_INVALID', `unsupported digest: ${digest}`);
  return digest.slice('sha256:'.length);
};

/** Whether a file exists; a failure other than its absence (EACCES, EIO) is thrown. */
function present(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (e) {
    if (isAbsent(e)) return false;
    throw storageFailure(e, `stat ${path}`);
  }
}

export interface UploadState {
  uuid: string;
  repo: string;
  size: number;
}

/** A live upload's running hash, so that finishing a chunked upload does not re-read it. */
interface LiveHash {
  hash: Hash;
  size: number;
}

export class RegistryStorage {
  private readonly live = new Map<string, LiveHash>();

  constructor(
    readonly root: string,
    /** dates blobs as used (gc's grace period) */
    readonly clock: Clock = systemClock,
  ) {}

  async init(): Promise<void> {
    for (const d of ['blobs/sha256', 'uploads', 'repos']) await fsp.mkdir(join(this.root, d), { recursive: true });
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', hexOf(digest));
  }

  private repoDir(repo: string): string {
    return join(this.root, 'repos', repo);
  }

  /** Writes a small file by rename (tmp name unique per call). */
  private async put(path: string, data: string | Buffer): Promise<void> {
    const tmp = `${path}.${randomUUID()}.tmp`;
    await fsp.mkdir(join(path, '..'), { recursive: true });
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, path);
  }

  // --- blobs -----------------------------------------------------------------------------

  /** The blob's size when `repo` holds it, else null. */
  blobInRepo(repo: string, digest: string): number | null {
    if (!isSha256(digest) || !present(join(this.repoDir(repo), '_blobs', hexOf(digest)))) return null;
    return this.blobSize(digest);
  }

  blobSize(digest: string): number | null {
    try {
      return statSync(this.blobPath(digest)).size;
    } catch (e) {
      if (isAbsent(e)) return null;
      throw storageFailure(e, `blob ${digest}`);
    }
  }

  /** Writes bytes `start`..`end` (inclusive) of a blob to a response whose headers are set, and ends it. */
  sendBlob(res: ServerResponse, digest: string, start: number, end: number): void {
    sendFile(res, this.blobPath(digest), start, end);
  }

  async linkBlob(repo: string, digest: string): Promise<void> {
    this.touchBlob(digest);
    await this.put(join(this.repoDir(repo), '_blobs', hexOf(digest)), '');
  }

  /**
   * Marks a blob as just used (its mtime = now): done whenever the registry tells a client a blob
   * is there (HEAD/GET, mount, an upload of a blob it already has, a manifest naming it), so gc's
   * grace period covers a push that skips uploading what exists. A blob gone meanwhile is no error.
   */
  touchBlob(digest: string): void {
    const now = new Date(this.clock.now());
    try {
      utimesSync(this.blobPath(digest), now, now);
    } catch (e) {
      // the request goes on; gc's grace period then counts from the blob's older mtime
      if (!isAbsent(e)) log.warn('registry: cannot mark a blob as used', { digest, err: errorMessage(e) });
    }
  }

  /** False when the repository does not hold the blob; a failure to remove the link is thrown. */
  async unlinkBlob(repo: string, digest: string): Promise<boolean> {
    const link = join(this.repoDir(repo), '_blobs', hexOf(digest));
    return unlessAbsent(
      fsp.unlink(link).then(() => true),
      false,
      `removing ${link}`,
    );
  }

  /** Stores verified bytes as a blob (manifests); returns its digest. */
  async putBlobBytes(bytes: Buffer): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (this.blobSize(digest) === null) await this.put(this.blobPath(digest), bytes);
    return digest;
  }

  // --- uploads ---------------------------------------------------------------------------

  async startUpload(repo: string): Promise<UploadState> {
    const uuid = randomUUID();
    const dir = join(this.root, 'uploads', uuid);
    await fsp.mkdir(dir);
    await fsp.writeFile(join(dir, 'data'), '');
    await fsp.writeFile(join(dir, 'repo'), repo);
    this.live.set(uuid, { hash: createHash('sha256'), size: 0 });
    return { uuid, repo, size: 0 };
  }

  async upload(repo: string, uuid: string): Promise<UploadState> {
    if (!/^[a-f0-9-]{36}$/.test(uuid)) throw fault('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    const dir = join(this.root, 'uploads', uuid);
    const owner = await unlessAbsent(fsp.readFile(join(dir, 'repo'), 'utf8'), null, `upload ${uuid}`);
    if (owner !== repo) throw fault('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    return { uuid, repo, size: statSync(join(dir, 'data')).size };
  }

  /**
   * Appends a request body to the upload; returns the new size. A body cut short or a failed
   * write drops the running hash (it may hold bytes the file does not): the next append or the
   * finish rebuilds it from the file.
   */
  async append(u: UploadState, body: Readable, expectedLength?: number): Promise<number> {
    const live = await this.liveHash(u);
    let n: number;
    try {
      n = await appendBody(join(this.root, 'uploads', u.uuid, 'data'), body, live.hash);
    } catch (e) {
      this.live.delete(u.uuid);
      throw e;
    }
    live.size += n;
    u.size = live.size;
    if (expectedLength !== undefined && n !== expectedLength) {
      // a short or long body: the data written is kept (the client may resume), the length is refused
      throw fault('SIZE_INVALID', `body was ${n} bytes, Content-Length said ${expectedLength}`);
    }
    return live.size;
  }

  /** The upload's running hash when it covers exactly the data file's bytes, else one rebuilt from the file. */
  private async liveHash(u: UploadState): Promise<LiveHash> {
    const live = this.live.get(u.uuid);
    return live && live.size === u.size ? live : this.rehash(u);
  }

  /** After a restart the running hash is gone: rebuild it from the data written so far. */
  private async rehash(u: UploadState): Promise<LiveHash> {
    const hash = createHash('sha256');
    await pipeline(createReadStream(join(this.root, 'uploads', u.uuid, 'data')), async function* (src) {
      for await (const c of src) hash.update(c as Buffer);
    });
    const live = { hash, size: u.size };
    this.live.set(u.uuid, live);
    return live;
  }

  /** Verifies the upload against `digest` and makes it a blob of the repository; else nothing is stored. */
  async finishUpload(u: UploadState, digest: string): Promise<void> {
    if (!isSha256(digest)) throw fault('DIGEST_INVALID', `unsupported digest ${digest}: only sha256 is supported`);
    // the size the data file has now, not one read before this request appended to it
    const st = await unlessAbsent(fsp.stat(join(this.root, 'uploads', u.uuid, 'data')), null, `upload ${u.uuid}`);
    if (st === null) throw fault('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    u.size = st.size;
    const live = await this.liveHash(u);
    const actual = `sha256:${live.hash.copy().digest('hex')}`;
    if (actual !== digest) {
      await this.cancelUpload(u.uuid);
      throw fault('DIGEST_INVALID', `provided digest ${digest} did not match uploaded content (${actual})`);
    }
    const dest = this.blobPath(digest);
    if (this.blobSize(digest) === null) await fsp.rename(join(this.root, 'uploads', u.uuid, 'data'), dest);
    await this.linkBlob(u.repo, digest);
    await this.cancelUpload(u.uuid);
  }

  async cancelUpload(uuid: string): Promise<void> {
    this.live.delete(uuid);
    await fsp.rm(join(this.root, 'uploads', uuid), { recursive: true, force: true });
  }

  // --- manifests and tags ------------------------------------------------------------------

  /** The manifest's media type when `repo` holds it, else null. */
  async manifestType(repo: string, digest: string): Promise<string | null> {
    if (!isSha256(digest)) return null;
    const link = join(this.repoDir(repo), '_manifests', hexOf(digest));
    return unlessAbsent(fsp.readFile(link, 'utf8'), null, `reading ${link}`);
  }

  async putManifest(repo: string, digest: string, mediaType: string): Promise<void> {
    await this.put(join(this.repoDir(repo), '_manifests', hexOf(digest)), mediaType);
  }

  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    const dir = this.repoDir(repo);
    const link = join(dir, '_manifests', hexOf(digest));
    if (
      !(await unlessAbsent(
        fsp.unlink(link).then(() => true),
        false,
        `removing ${link}`,
      ))
    )
      return false;
    for (const t of await this.tags(repo))
      if ((await this.tag(repo, t)) === digest) await fsp.rm(join(dir, '_tags', t), { force: true });
    // its entry in any subject's referrers list goes with it
    const refs = join(dir, '_referrers');
    for (const subject of await this.list(refs)) await fsp.rm(join(refs, subject, hexOf(digest)), { force: true });
    return true;
  }

  async tag(repo: string, tag: string): Promise<string | null> {
    const file = join(this.repoDir(repo), '_tags', tag);
    return unlessAbsent(fsp.readFile(file, 'utf8'), null, `reading ${file}`);
  }

  async setTag(repo: string, tag: string, digest: string): Promise<void> {
    await this.put(join(this.repoDir(repo), '_tags', tag), digest);
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    const file = join(this.repoDir(repo), '_tags', tag);
    return unlessAbsent(
      fsp.unlink(file).then(() => true),
      false,
      `removing ${file}`,
    );
  }

  async tags(repo: string): Promise<string[]> {
    return (await this.list(join(this.repoDir(repo), '_tags'))).filter((t) => !t.endsWith('.tmp')).sort();
  }

  repoExists(repo: string): boolean {
    return present(join(this.repoDir(repo), '_manifests')) || present(join(this.repoDir(repo), '_blobs'));
  }

  /** Every repository holding at least one manifest, sorted. */
  repositories(): Promise<string[]> {
    return this.reposWith('_manifests');
  }

  /** Every repository holding at least one blob link. */
  repositoriesWithBlobs(): Promise<string[]> {
    return this.reposWith('_blobs');
  }

  private async reposWith(marker: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      const dir = join(this.root, 'repos', rel);
      const entries = await unlessAbsent(fsp.readdir(dir, { withFileTypes: true }), [], `listing ${dir}`);
      if (rel && entries.some((e) => e.name === marker)) out.push(rel);
      for (const e of entries)
        if (e.isDirectory() && !e.name.startsWith('_')) await walk(rel ? `${rel}/${e.name}` : e.name);
    };
    await walk('');
    return out.sort();
  }

  async addReferrer(repo: string, subject: string, digest: string, descriptor: object): Promise<void> {
    await this.put(join(this.repoDir(repo), '_referrers', hexOf(subject), hexOf(digest)), JSON.stringify(descriptor));
  }

  async referrers(repo: string, subject: string): Promise<Array<Record<string, unknown>>> {
    const dir = join(this.repoDir(repo), '_referrers', hexOf(subject));
    const names = (await this.list(dir)).filter((n) => !n.endsWith('.tmp')).sort();
    const out: Array<Record<string, unknown>> = [];
    for (const n of names) {
      const text = await unlessAbsent(fsp.readFile(join(dir, n), 'utf8'), null, `reading referrer ${n}`);
      if (text) out.push(JSON.parse(text) as Record<string, unknown>);
    }
    return out;
  }

  /** A directory's entries; none when it does not exist; a failure to read it is thrown (gc must see every manifest). */
  private async list(dir: string): Promise<string[]> {
    return unlessAbsent(fsp.readdir(dir), [] as string[], `listing ${dir}`);
  }

  /** Every (repository, manifest digest) the registry holds. */
  async allManifests(): Promise<Array<{ repo: string; digest: string }>> {
    const out: Array<{ repo: string; digest: string }> = [];
    for (const repo of await this.repositories())
      for (const n of await this.list(join(this.repoDir(repo), '_manifests')))
        if (/^[a-f0-9]{64}$/.test(n)) out.push({ repo, digest: `sha256:${n}` });
    return out;
  }
}
