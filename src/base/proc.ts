/**
 * Running a helper program to completion (tar, cp, ip, nft): its input from bytes, text or a
 * stream, its output into a stream (left open), its stderr kept for the error. A caller wraps the
 * error with what it was doing.
 */
import { spawnProcess, type Spawned } from './spawn.js';
import type { Readable, Writable } from 'node:stream';

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(stderr.trim() || `${cmd} exited ${code}`);
  }
}

export function runCommand(
  cmd: string,
  args: string[],
  o: { input?: Readable | string; output?: Writable } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    let p: Spawned;
    try {
      // posix_spawn, not Node's fork+exec: see spawn.ts
      p = spawnProcess(cmd, args, process.env, {
        out: o.output ? [1, 2] : [2],
        ...(o.input !== undefined ? { into: [0] } : {}),
      });
    } catch (e) {
      reject(e);
      return;
    }
    let err = '';
    const stderr = p.out.get(2)!;
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const drained = [stderr, ...(o.output ? [p.out.get(1)!] : [])].map((s) => new Promise((r) => s.once('close', r)));
    const stdin = p.in.get(0);
    if (stdin && o.input !== undefined) {
      if (typeof o.input === 'string') stdin.end(o.input);
      else {
        o.input.on('error', (e) => {
          process.kill(p.pid, 'SIGTERM');
          reject(e);
        });
        o.input.pipe(stdin);
      }
    }
    if (o.output) p.out.get(1)!.pipe(o.output, { end: false });
    // like Node's 'close': the process ended and its output was read to the end
    void Promise.all([p.exited, ...drained]).then(([status]) =>
      status.code === 0 ? resolve() : reject(new CommandError(cmd, status.code, err)),
    );
  });
}
