/**
 * Running a helper program to completion (tar, cp, ip, nft): its input from bytes, text or a
 * stream, its output into a stream (left open), its stderr kept for the error. A caller wraps the
 * error with what it was doing.
 */
import { spawn } from 'node:child_process';
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

export function runCommand(cmd: string, args: string[], o: { input?: Readable | string; output?: Writable } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: [o.input === undefined ? 'ignore' : 'pipe', o.output ? 'pipe' : 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    if (o.input !== undefined) {
      p.stdin!.on('error', () => undefined); // a command that does not read its input (or died): its exit code tells
      if (typeof o.input === 'string') p.stdin!.end(o.input);
      else {
        o.input.on('error', (e) => {
          p.kill();
          reject(e);
        });
        o.input.pipe(p.stdin!);
      }
    }
    if (o.output) p.stdout!.pipe(o.output, { end: false });
    p.on('close', (code) => (code === 0 ? resolve() : reject(new CommandError(cmd, code, err))));
  });
}
