/**
 * BuildKit's `local` and `tar` exporters: the result of a build sent to the client through its
 * session's moby.filesync.v1.FileSend/DiffCopy (buildkit session/filesync):
 * - `tar` (CopyFileWriter): the root filesystem as a tar, in BytesMessage chunks, then a
 *   half-close; the client writes it where its `dest` says and ends the stream with its status.
 * - `local` (CopyToCaller -> fsutil.Send): the daemon is fsutil's SENDER, the opposite of the
 *   context upload (./filesync.ts): a STAT per entry in Go's filepath.Walk order (names sorted,
 *   a directory before its contents; the root itself not sent), an empty STAT; then for each REQ{ID}
 *   the file's bytes as DATA{ID} packets and an empty DATA{ID}; the receiver's FIN is answered with
 *   FIN. A second name of a regular file already sent is a hard link: its `linkname` is the first
 *   name, and it is never REQuested.
 * The root filesystem is read through fds only (../archive/rooted.ts): each name is opened below
 * its directory's fd without following anything, so a symlink in the image is sent as a symlink
 * and never followed on the host.
 */
import { closeSync, fstatSync, promises as fsp, type Stats } from 'node:fs';
import { Writable } from 'node:stream';
import { invalidArgument, unavailable } from '../base/errors.js';
import { O_DIRECTORY, O_NOFOLLOW, O_PATH, openat2, readlinkFd, RESOLVE_IN_ROOT } from '../base/syscalls.js';
import { RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS } from '../base/syscalls.js';
import { fdPath, openChild } from '../archive/rooted.js';
import { packDir } from '../archive/container-fs.js';
import { FILE_SEND, FILE_SEND_BYTES, type FsStat, type Packet } from './protos.js';
import { GRPC, GrpcError } from './grpc-client.js';
import type { Session } from './session.js';

export type ExportType = 'local' | 'tar';

/** Go's os.FileMode bits (io/fs) */
const GO_DIR = 0x80000000;
const GO_SYMLINK = 0x08000000;
const GO_SETUID = 1 << 23;
const GO_SETGID = 1 << 22;
const GO_STICKY = 1 << 20;
const CHUNK = 32 * 1024; // fsutil's send buffer
const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;

/** BuildKit's words when the client serves no FileSend (session.MethodURL lower-cases the method). */
function checkFileSend(session: Session): void {
  if (!session.supports(FILE_SEND.path))
    throw invalidArgument('method /moby.filesync.v1.FileSend/diffcopy not supported by the client');
}

/** A GrpcError from the client (it refused or failed the transfer) as a build error. */
function clientError(e: unknown, what: string): never {
  // a client that lists no methods (dockerode's sessions) is asked anyway: UNIMPLEMENTED is BuildKit's refusal
  if (e instanceof GrpcError && e.code === GRPC.UNIMPLEMENTED)
    throw invalidArgument(`${what}: method /moby.filesync.v1.FileSend/diffcopy not supported by the client`, e);
  if (e instanceof GrpcError)
    throw unavailable(`${what}: the client's FileSend failed: ${e.message.replace(`${FILE_SEND.path}: `, '')}`, e);
  throw e;
}

/** Sends the root filesystem `root` to the client as the exporter `type` says. */
export async function exportToClient(
  session: Session,
  type: ExportType,
  root: string,
  signal: AbortSignal,
): Promise<void> {
  checkFileSend(session);
  if (type === 'tar') await sendTar(session, root, signal);
  else await sendLocal(session, root, signal);
}

async function sendTar(session: Session, root: string, signal: AbortSignal): Promise<void> {
  const call = session.grpc.bidi(FILE_SEND_BYTES, signal);
  // the client's status: read at once, so an early refusal stops the packing
  const status = (async () => {
    for await (const _ of call.messages);
  })();
  status.catch(() => undefined);
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      call.send({ data: chunk }).then(() => cb(), cb);
    },
  });
  // the client ending (even with OK) before it has the whole tar is a failure
  const early = status.then(() => {
    throw new GrpcError(2, 'the client ended the transfer before the tar was complete');
  });
  early.catch(() => undefined);
  const packing = packDir(root, out);
  packing.catch(() => undefined);
  try {
    await Promise.race([packing, early]);
    call.end();
    await status;
  } catch (e) {
    // the producer stops when its output closes (archive/'s promise); the view is unmounted after it
    out.destroy();
    await packing.catch(() => undefined);
    clientError(e, 'sending tarball');
  }
}

/** Go's os.FileMode of an lstat (fsutil's Stat.mode). */
function goMode(st: Stats): number {
  let m = st.mode & 0o777;
  if (st.mode & 0o4000) m |= GO_SETUID;
  if (st.mode & 0o2000) m |= GO_SETGID;
  if (st.mode & 0o1000) m |= GO_STICKY;
  if (st.isDirectory()) m |= GO_DIR;
  else if (st.isSymbolicLink()) m |= GO_SYMLINK;
  return m >>> 0;
}

async function sendLocal(session: Session, root: string, signal: AbortSignal): Promise<void> {
  const call = session.grpc.bidi(FILE_SEND, signal);
  const rootFd = openat2(-100, root, O_PATH | O_DIRECTORY, 0);
  /** ID -> path below the root of a regular file the client may ask for */
  const files = new Map<number, string>();
  // the receiver's packets, read at once (it may ask for files while the walk is still sent)
  const reqs: number[] = [];
  let fin = false;
  const waiter: { wake: (() => void) | null } = { wake: null };
  const reader = (async () => {
    for await (const p of call.messages) {
      if (p.type === 'PACKET_REQ') reqs.push(p.ID ?? 0);
      else if (p.type === 'PACKET_FIN') fin = true;
      else if (p.type === 'PACKET_ERR')
        throw new GrpcError(2, `error from receiver: ${Buffer.from(p.data ?? []).toString()}`);
      waiter.wake?.();
    }
    throw new GrpcError(2, 'the client ended the transfer before it finished');
  })();
  reader.catch(() => undefined);
  const failed = reader.then(
    () => undefined,
    (e: unknown) => e,
  );
  const send = async (p: Packet) => {
    const e = await Promise.race([call.send(p).then(() => null), failed]);
    if (e) throw e;
  };
  try {
    let id = 0;
    const links = new Map<string, string>();
    const walk = async (dirFd: number, rel: string): Promise<void> => {
      const names = (await fsp.readdir(fdPath(dirFd))).sort();
      for (const n of names) {
        const path = rel ? `${rel}/${n}` : n;
        const fd = openChild(dirFd, n);
        try {
          const st = fstatSync(fd);
          // devices, FIFOs and sockets are not sent (a client's directory is no place for them)
          if (!st.isDirectory() && !st.isSymbolicLink() && !st.isFile()) continue;
          let linkname = '';
          if (st.isSymbolicLink()) linkname = readlinkFd(fd);
          else if (st.isFile() && st.nlink > 1) {
            const key = `${st.dev}:${st.ino}`;
            linkname = links.get(key) ?? '';
            if (!linkname) links.set(key, path);
          }
          const stat: FsStat = {
            path,
            mode: goMode(st),
            uid: st.uid,
            gid: st.gid,
            size: st.isFile() && !linkname ? st.size : 0,
            modTime: Math.floor(st.mtimeMs) * 1e6,
            linkname,
          };
          if (st.isFile() && !linkname) files.set(id, path);
          id++;
          await send({ type: 'PACKET_STAT', stat });
          if (st.isDirectory()) await walk(fd, path);
        } finally {
          closeSync(fd);
        }
      }
    };
    await walk(rootFd, '');
    await send({ type: 'PACKET_STAT' });
    for (;;) {
      const next = reqs.shift();
      if (next !== undefined) {
        await sendFile(rootFd, files, next, send);
        continue;
      }
      if (fin) break;
      const e = await Promise.race([new Promise<null>((r) => (waiter.wake = () => r(null))), failed]);
      waiter.wake = null;
      if (e) throw e;
    }
    await send({ type: 'PACKET_FIN' });
    call.end();
    await reader.catch((e: unknown) => {
      // the client's status after our FIN: OK is the end of the messages
      if (!(e instanceof GrpcError && e.message === 'the client ended the transfer before it finished')) throw e;
    });
  } catch (e) {
    clientError(e, 'exporting to client directory');
  } finally {
    closeSync(rootFd);
  }
}

/** DATA packets of file `id` (re-opened below the root with no symlink followed), then an empty one. */
async function sendFile(
  rootFd: number,
  files: Map<number, string>,
  id: number,
  send: (p: Packet) => Promise<void>,
): Promise<void> {
  const path = files.get(id);
  if (path === undefined) throw invalidArgument(`the client asked for file ${id}, which is not a regular file sent`);
  files.delete(id);
  const fd = openat2(
    rootFd,
    path,
    O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
    RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  );
  const fh = await fsp.open(fdPath(fd), 'r').finally(() => closeSync(fd));
  try {
    if (!(await fh.stat()).isFile()) throw invalidArgument(`${path} is no longer a regular file`);
    const buf = Buffer.alloc(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      await send({ type: 'PACKET_DATA', ID: id, data: Buffer.from(buf.subarray(0, bytesRead)) });
    }
  } finally {
    await fh.close();
  }
  await send({ type: 'PACKET_DATA', ID: id });
}
