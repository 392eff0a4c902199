/**
 * Running a helper program to completion (tar, cp, ip, nft): its input from bytes, text or a
 * stream, its output into a stream (left open), its stderr kept for the error, under a deadline
 * (every outside process gets one: on expiry it is SIGKILLed and the call fails). A caller wraps the
 * error with what it was doing.
 *
 * `env` replaces the environment (default: the daemon's). `group`: the helper runs in a session and
 * process group of its own, and the deadline kills the whole group, so that a helper's children (a
 * shell script's `sleep`, a plugin's own helpers) die with it. Either way the call ends at the
 * deadline: a child left holding the pipes cannot keep it waiting.
 */
import { spawnProcess, type Spawned } from './spawn.js';
import type { Readable, Writable } from 'node:stream';
import { BerthError } from './errors.js';

/** How long a helper program may run unless the caller says otherwise. */
export const COMMAND_DEADLINE_MS = 120_000;

/** A helper program that failed: exited non-zero (`exitCode`), or was killed at its deadline (null). */
export class CommandError extends BerthError {
  constructor(
    readonly cmd: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    message = stderr.trim() || `${cmd} exited ${exitCode}`,
  ) {
    super('Internal', message);
  }
}

export function runCommand(
  cmd: string,
  args: string[],
  o: {
    input?: Readable | string;
    output?: Writable;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    group?: boolean;
  } = {},
): Promise<void> {
  const deadline = o.timeoutMs ?? COMMAND_DEADLINE_MS;
  return new Promise((resolve, reject) => {
    let p: Spawned;
    try {
      // posix_spawn, not Node's fork+exec: see spawn.ts
      p = spawnProcess(cmd, args, o.env ?? process.env, {
        out: o.output ? [1, 2] : [2],
        ...(o.input !== undefined ? { into: [0] } : {}),
        ...(o.group ? { detached: true } : {}),
      });
    } catch (e) {
      reject(e);
      return;
    }
    let err = '';
    const stderr = p.out.get(2)!;
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const pipes = [stderr, ...(o.output ? [p.out.get(1)!] : [])];
    const drained = pipes.map((s) => new Promise((r) => s.once('close', r)));
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
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      try {
        process.kill(o.group ? -p.pid : p.pid, 'SIGKILL');
      } catch {
        // it has just ended on its own
      }
      for (const s of pipes) s.destroy(); // a grandchild may hold them open: do not wait for it
    }, deadline);
    timer.unref();
    // like Node's 'close': the process ended and its output was read to the end
    void Promise.all([p.exited, ...drained]).then(([status]) => {
      clearTimeout(timer);
      if (expired)
        reject(new CommandError(cmd, null, err, `${cmd} did not finish in ${deadline / 1000} s and was killed`));
      else if (status.code === 0) resolve();
      else reject(new CommandError(cmd, status.code, err));
    });
  });
}
