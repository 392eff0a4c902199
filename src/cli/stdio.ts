/**
 * The CLI's own text on stdout and stderr (tables, ids, messages): written to fds 1 and 2 with
 * writeSync, so that a command that only prints never makes process.stdout, a stream whose
 * modules cost ~3 ms of a `berth ps` (cli/README.md "Start-up").
 * Node makes process.stdout and process.stderr on first read; watchStdio() notes when that
 * happened (attach's pump, `logs`, `save` to a pipe use the streams). From then on the CLI's own
 * text goes through the stream too, so that it keeps its order with what the stream still holds,
 * and the exit waits for stdout to drain.
 */
import { writeSync } from 'node:fs';

type Name = 'stdout' | 'stderr';
const made: Record<Name, boolean> = { stdout: false, stderr: false };

/**
 * Puts a watch on process.stdout and process.stderr's getters. A closed stdout (`berth logs | head`)
 * ends the CLI quietly, as for any Unix tool, whichever way it was written.
 */
export function watchStdio(): void {
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  };
  for (const name of ['stdout', 'stderr'] as const) {
    const d = Object.getOwnPropertyDescriptor(process, name);
    const get = d?.get;
    if (!get || !d.configurable) {
      made[name] = true; // not Node's lazy getter: use the stream as it is
      continue;
    }
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: d.enumerable ?? true,
      get() {
        const stream = get.call(process) as NodeJS.WriteStream;
        if (!made[name]) {
          made[name] = true;
          if (name === 'stdout') stream.on('error', onStdoutError);
        }
        return stream;
      },
    });
  }
  if (made.stdout) process.stdout.on('error', onStdoutError);
}

/** Writes `s` to stdout or stderr: straight to the fd, or through the stream once that exists. */
export function write(name: Name, s: string | Buffer): void {
  if (made[name]) {
    process[name].write(s);
    return;
  }
  let b = typeof s === 'string' ? Buffer.from(s) : s;
  try {
    while (b.length) b = b.subarray(writeSync(name === 'stdout' ? 1 : 2, b));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') {
      if (name === 'stdout') process.exit(0);
      return; // nobody reads stderr
    }
    // a non-blocking fd that is full: the stream waits for it
    if (code === 'EAGAIN') return void process[name].write(b);
    throw e;
  }
}

/** Exits with `code` once what was written through process.stdout has drained. */
export function exitAfterOutput(code: number): void {
  if (made.stdout) process.stdout.write('', () => process.exit(code));
  else process.exit(code);
}
