/**
 * conmon's attach socket (SOCK_SEQPACKET, via node-unix-socket). Each packet conmon sends starts
 * with one byte naming the pipe (2 = stdout, 3 = stderr, conmon's ctr_stdio.c); stdin is written
 * raw, in packets no larger than conmon's 8 KiB read buffer. Half-closing our side closes the
 * container's stdin (unless conmon runs with --leave-stdin-open).
 */
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { unavailable } from '../base/errors.js';
import type { AttachSession } from './types.js';

const require = createRequire(import.meta.url);
interface Seqpacket {
  connect(path: string, cb?: () => void): void;
  write(buf: Buffer, offset?: number, length?: number, cb?: () => void): void;
  end(cb?: () => void): void;
  destroy(): void;
  setInternalReadBufferSize(n: number): void;
  on(ev: 'data', cb: (b: Buffer) => void): void;
  on(ev: 'end' | 'close', cb: () => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  once(ev: 'connect', cb: () => void): void;
  once(ev: 'error', cb: (e: Error) => void): void;
}
const { SeqpacketSocket } = require('node-unix-socket') as { SeqpacketSocket: new () => Seqpacket };

const STDOUT = 2;
const STDERR = 3;
const MAX_PACKET = 8192;

export function connectAttach(path: string, opts: { stdin: boolean }): Promise<AttachSession> {
  return new Promise((resolve, reject) => {
    const sock = new SeqpacketSocket();
    sock.setInternalReadBufferSize(MAX_PACKET + 1);
    const outputs: Array<(s: 'stdout' | 'stderr', b: Buffer) => void> = [];
    const ends: Array<() => void> = [];
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      for (const e of ends) e();
    };
    sock.on('data', (buf) => {
      const kind = buf[0];
      if (kind !== STDOUT && kind !== STDERR) return;
      const payload = Buffer.from(buf.subarray(1));
      for (const o of outputs) o(kind === STDOUT ? 'stdout' : 'stderr', payload);
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', finish);
    let closed = false;
    const stdin = opts.stdin
      ? new Writable({
          write(chunk: Buffer, _enc, cb) {
            if (closed) return cb();
            for (let i = 0; i < chunk.length; i += MAX_PACKET) sock.write(chunk.subarray(i, i + MAX_PACKET));
            cb();
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
    sock.once('error', (e) => reject(unavailable(`attach to ${path} failed: ${e.message}`)));
    try {
      sock.connect(path, () => resolve(session));
    } catch (e) {
      reject(unavailable(`attach to ${path} failed: ${e instanceof Error ? e.message : String(e)}`));
    }
  });
}
