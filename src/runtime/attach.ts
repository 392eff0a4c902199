/**
 * conmon's attach socket (SOCK_SEQPACKET). Each packet conmon sends starts with one byte naming
 * the pipe (2 = stdout, 3 = stderr, conmon's ctr_stdio.c); stdin is written raw, in packets no
 * larger than conmon's 8 KiB read buffer (a larger packet would be truncated by its recv).
 * Half-closing our side closes the container's stdin (unless conmon runs with
 * --leave-stdin-open).
 *
 * Node cannot open a SOCK_SEQPACKET socket itself, and `new net.Socket({ fd })` refuses one (libuv
 * guesses its handle type as unknown). So the fd is connected with koffi and handed to a libuv pipe
 * handle directly: libuv reads it with read(2), which returns exactly one packet per call, so each
 * 'data' event is one packet; writes are serialized so that no two chunks merge into one packet.
 */
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { unavailable } from '../base/errors.js';
import { closeFd, connectSeqpacket } from '../base/syscalls.js';
import type { AttachSession } from './types.js';

interface PipeHandle {
  open(fd: number): number;
}
interface PipeWrap {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}
const pipeWrap = (process as unknown as { binding(name: 'pipe_wrap'): PipeWrap }).binding('pipe_wrap');

/** A net.Socket over a connected SOCK_SEQPACKET socket. */
function seqpacketSocket(path: string): Socket {
  const fd = connectSeqpacket(path);
  const handle = new pipeWrap.Pipe(pipeWrap.constants.SOCKET);
  const rc = handle.open(fd);
  if (rc !== 0) {
    closeFd(fd);
    throw new Error(`cannot open the socket (${rc})`); // connectAttach says which attach failed
  }
  return new Socket({ handle, readable: true, writable: true } as ConstructorParameters<typeof Socket>[0]);
}

const STDOUT = 2;
const STDERR = 3;
const MAX_PACKET = 8192;

export function connectAttach(path: string, opts: { stdin: boolean }): Promise<AttachSession> {
  let sock: Socket;
  try {
    sock = seqpacketSocket(path);
  } catch (e) {
    return Promise.reject(unavailable(`attach to ${path} failed: ${e instanceof Error ? e.message : String(e)}`));
  }
  const outputs: Array<(s: 'stdout' | 'stderr', b: Buffer) => void> = [];
  const ends: Array<() => void> = [];
  let ended = false;
  const finish = () => {
    if (ended) return;
    ended = true;
    for (const e of ends) e();
  };
  sock.on('data', (buf: Buffer) => {
    const kind = buf[0];
    if (kind !== STDOUT && kind !== STDERR) return;
    const payload = buf.subarray(1);
    for (const o of outputs) o(kind === STDOUT ? 'stdout' : 'stderr', payload);
  });
  sock.on('end', finish);
  sock.on('close', finish);
  sock.on('error', finish);
  let closed = false;
  // A write error means the container's stdin is gone: input is dropped, as with a closed pipe.
  const writePackets = (chunk: Buffer, at: number, cb: () => void): void => {
    if (closed || ended || at >= chunk.length) return cb();
    sock.write(chunk.subarray(at, at + MAX_PACKET), (e) => (e ? cb() : writePackets(chunk, at + MAX_PACKET, cb)));
  };
  const stdin = opts.stdin
    ? new Writable({
        write(chunk: Buffer, _enc, cb) {
          writePackets(chunk, 0, cb);
        },
      })
    : null;
  const session: AttachSession = {
    stdin,
    onOutput: (cb) => outputs.push(cb),
    onEnd: (cb) => (ended ? cb() : ends.push(cb)),
    closeStdin: () => {
      if (!closed) sock.end();
    },
    close: () => {
      closed = true;
      sock.destroy();
    },
  };
  return Promise.resolve(session);
}
