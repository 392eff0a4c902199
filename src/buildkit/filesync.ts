/**
 * A build context through the session (`/build?remote=client-session`): the daemon calls
 * moby.filesync.v1.FileSync/DiffCopy on the client's session for the directories the client
 * syncs (`dir-name: context` and `dir-name: dockerfile`, as BuildKit's dockerfile frontend asks
 * for them), speaking fsutil's receiver side of the Packet protocol (fsutil receive.go):
 *   client -> STAT per entry in walk order (IDs are the 0-based position), then an empty STAT;
 *   daemon -> REQ{ID} for a regular file; client -> DATA{ID, bytes}..., DATA{ID, empty} at its end;
 *   daemon -> FIN when it has everything; client -> FIN; the streams close.
 * What arrives is written as a tar stream, which the builder unpacks with its one extractor and
 * its containment rules (../archive/extract.ts CONTEXT_POLICY): nothing here touches the disk.
 */
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pack as tarPack, type Pack } from 'tar-stream';
import { invalidArgument } from '../base/errors.js';
import { IgnoreMatcher } from '../spec/dockerignore.js';
import { DIFF_COPY, type FsStat, type Packet } from './protos.js';
import type { Session } from './session.js';

/** Go's os.FileMode bits (io/fs): the type in the high bits, permissions in the low nine. */
const MODE_DIR = 0x80000000;
const MODE_SYMLINK = 0x08000000;
const MODE_SETUID = 1 << 23;
const MODE_SETGID = 1 << 22;
const MODE_STICKY = 1 << 20;
/** device, named pipe, socket, char device, irregular: never part of a build context */
const MODE_OTHER = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
const MAX_ENTRIES = 1_000_000;
const MAX_DOCKERFILE = 4 * 1024 * 1024;
const MAX_DOCKERIGNORE = 1024 * 1024;

const permOf = (m: number) =>
  (m & 0o777) | (m & MODE_SETUID ? 0o4000 : 0) | (m & MODE_SETGID ? 0o2000 : 0) | (m & MODE_STICKY ? 0o1000 : 0);

type Kind = 'directory' | 'symlink' | 'file' | null;
function kindOf(m: number): Kind {
  if ((m & MODE_DIR) !== 0) return 'directory';
  if ((m & MODE_SYMLINK) !== 0) return 'symlink';
  if ((m & MODE_OTHER) !== 0) return null;
  return 'file';
}

/** One entry of a synced directory; `data` yields a regular file's bytes (only while it is visited). */
export interface SyncEntry {
  stat: FsStat;
  kind: Exclude<Kind, null>;
  data(): AsyncIterable<Buffer>;
}

/**
 * Receives the session's directory `dir` and visits its entries in walk order. `want` says which
 * regular files' contents to ask for; a file not wanted is visited without data.
 */
export async function syncDir(
  session: Session,
  dir: string,
  opts: { followPaths?: string[]; include?: string[]; exclude?: string[] },
  signal: AbortSignal,
  visit: (e: SyncEntry) => Promise<void>,
): Promise<void> {
  if (!session.supports(DIFF_COPY.path))
    throw invalidArgument(`the session does not serve ${DIFF_COPY.path}: no build context to read`);
  const md: Record<string, string | string[]> = { 'dir-name': dir };
  if (opts.followPaths?.length) md['followpaths'] = opts.followPaths;
  if (opts.include?.length) md['include-patterns'] = opts.include;
  if (opts.exclude?.length) md['exclude-patterns'] = opts.exclude;
  const call = session.grpc.bidi(DIFF_COPY, signal, md);
  const it = call.messages[Symbol.asyncIterator]();
  const next = async (): Promise<Packet> => {
    const r = await it.next();
    if (r.done) throw invalidArgument(`session directory ${dir}: the client ended the transfer early`);
    if (r.value.type === 'PACKET_ERR')
      throw invalidArgument(
        `session directory ${dir}: error from the client: ${Buffer.from(r.value.data ?? []).toString()}`,
      );
    return r.value;
  };
  try {
    const stats: FsStat[] = [];
    for (;;) {
      const p = await next();
      if (p.type !== 'PACKET_STAT')
        throw invalidArgument(`session directory ${dir}: unexpected ${p.type} during the walk`);
      if (!p.stat) break;
      if (stats.length >= MAX_ENTRIES)
        throw invalidArgument(`session directory ${dir}: more than ${MAX_ENTRIES} entries`);
      stats.push(p.stat);
    }
    for (let id = 0; id < stats.length; id++) {
      const stat = stats[id]!;
      const kind = kindOf(stat.mode);
      if (!kind) continue;
      let asked = false;
      const data = async function* (): AsyncGenerator<Buffer> {
        if (kind !== 'file' || asked) return;
        asked = true;
        await call.send({ type: 'PACKET_REQ', ID: id });
        for (;;) {
          const p = await next();
          if (p.type !== 'PACKET_DATA' || p.ID !== id)
            throw invalidArgument(`session directory ${dir}: unexpected ${p.type} ${p.ID ?? ''} for file ${id}`);
          if (!p.data?.length) return;
          yield Buffer.from(p.data);
        }
      };
      await visit({ stat, kind, data });
      if (kind === 'file' && !asked) continue;
    }
    await call.send({ type: 'PACKET_FIN' });
    for (;;) {
      const r = await it.next();
      if (r.done || r.value.type === 'PACKET_FIN') break;
    }
    call.end();
    for (;;) if ((await it.next()).done) break; // to the status
  } finally {
    call.end();
  }
}

async function readAll(src: AsyncIterable<Buffer>, max: number, what: string): Promise<Buffer> {
  const out: Buffer[] = [];
  let n = 0;
  for await (const c of src) {
    n += c.length;
    if (n > max) throw invalidArgument(`${what} is larger than ${max} bytes`);
    out.push(c);
  }
  return Buffer.concat(out);
}

/** Writes a regular file's bytes as a tar entry; its size must be what the client's stat said. */
async function packFile(p: Pack, header: Parameters<Pack['entry']>[0], src: AsyncIterable<Buffer>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const w = p.entry(header, (e) => (e ? reject(e) : resolve()));
    void (async () => {
      try {
        for await (const c of src) if (!w.write(c)) await new Promise<void>((r) => w.once('drain', () => r()));
        w.end(undefined as never);
      } catch (e) {
        w.destroy(e instanceof Error ? e : new Error(String(e)));
        reject(e);
      }
    })();
  });
}

/**
 * The context of a `remote=client-session` build as a tar stream, and the name its Dockerfile has
 * in it. As the docker CLI does for a Dockerfile outside its context (AddDockerfileToBuildContext),
 * the Dockerfile from the session's `dockerfile` directory goes in under a random name, which is
 * added to .dockerignore (so `COPY .` does not take it).
 *
 * `.dockerignore` is applied here, as BuildKit's dockerfile frontend does: the context's
 * .dockerignore is fetched first (a DiffCopy including only it), its patterns go to the client as
 * `exclude-patterns`, and whatever the client still sends that they exclude is neither asked for
 * nor written (the builder no longer filters a context: the legacy clients filter theirs).
 */
export async function sessionContext(
  session: Session,
  dockerfile: string,
  signal: AbortSignal,
): Promise<{ tar: Readable; dockerfile: string }> {
  const name = posix.basename(dockerfile || 'Dockerfile');
  let text: Buffer | null = null;
  await syncDir(session, 'dockerfile', { followPaths: [name], include: [name] }, signal, async (e) => {
    if (e.kind === 'file' && e.stat.path === name) text = await readAll(e.data(), MAX_DOCKERFILE, 'the Dockerfile');
  });
  if (text === null) throw invalidArgument(`Cannot locate specified Dockerfile: ${name}`);
  let ignoreText: Buffer | null = null;
  await syncDir(
    session,
    'context',
    { followPaths: ['.dockerignore'], include: ['.dockerignore'] },
    signal,
    async (e) => {
      if (e.kind === 'file' && e.stat.path === '.dockerignore')
        ignoreText = await readAll(e.data(), MAX_DOCKERIGNORE, '.dockerignore');
    },
  );
  const ignoreLines = (ignoreText ?? Buffer.alloc(0))
    .toString('utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const ignore = new IgnoreMatcher(ignoreLines);
  const hidden = `.dockerfile.${randomBytes(10).toString('hex')}`;
  const p = tarPack();
  const fill = async () => {
    const now = new Date();
    p.entry({ name: hidden, mode: 0o600, mtime: now }, text!);
    let ignored = false;
    await syncDir(session, 'context', { exclude: ignoreLines }, signal, async (e) => {
      const s = e.stat;
      if (s.path !== '.dockerignore' && ignore.ignores(s.path)) return; // its data is never asked for
      const header = {
        name: e.kind === 'directory' ? `${s.path}/` : s.path,
        mode: permOf(s.mode),
        uid: s.uid,
        gid: s.gid,
        mtime: new Date(Math.floor(s.modTime / 1e6)),
      };
      if (e.kind === 'directory') p.entry({ ...header, type: 'directory' });
      else if (e.kind === 'symlink') p.entry({ ...header, type: 'symlink', linkname: s.linkname });
      else if (s.path === '.dockerignore') {
        ignored = true;
        const b = Buffer.concat([
          await readAll(e.data(), MAX_DOCKERIGNORE, '.dockerignore'),
          Buffer.from(`\n${hidden}\n`),
        ]);
        p.entry({ ...header, type: 'file' }, b);
      } else await packFile(p, { ...header, type: 'file', size: s.size }, e.data());
    });
    if (!ignored) p.entry({ name: '.dockerignore', mode: 0o600, mtime: now }, `${hidden}\n`);
    p.finalize();
  };
  const tar = new PassThrough();
  (p as unknown as NodeJS.ReadableStream).pipe(tar);
  p.on('error', (e: Error) => tar.destroy(e));
  fill().catch((e: unknown) => p.destroy(e instanceof Error ? e : new Error(String(e))));
  return { tar, dockerfile: hidden };
}
