/**
 * Starting conmon and talking to it over its pipes (conmon's `_OCI_SYNCPIPE`, `_OCI_ATTACHPIPE`,
 * `_OCI_STARTPIPE` protocol, API version 1: one JSON object `{"data": N, "message": "..."}` per
 * report; N < 0 is a failure with the runtime's message). conmon daemonizes: the process we spawn
 * exits at once and the monitor outlives the daemon.
 */
import type { Readable, Writable } from 'node:stream';
import { unavailable } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { spawnProcessAsync } from '../base/spawn.js';

export interface SyncMessage {
  data: number;
  message?: string;
}

/** Reads `{"data": ...}` reports from a conmon pipe, one at a time. */
export class SyncReader {
  private buf = '';
  private readonly queue: SyncMessage[] = [];
  private waiting: Array<{ resolve: (m: SyncMessage) => void; reject: (e: Error) => void }> = [];
  private closed = false;

  constructor(
    private readonly stream: Readable,
    private readonly what: string,
  ) {
    stream.on('data', (c: Buffer) => {
      this.buf += c.toString();
      this.parse();
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiting) w.reject(unavailable(`conmon closed its ${what} pipe without reporting`));
      this.waiting = [];
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  private parse(): void {
    // conmon writes objects without separators in some versions: split on balanced braces.
    for (;;) {
      const start = this.buf.indexOf('{');
      const stop = this.buf.indexOf('}', start);
      if (start < 0 || stop < 0) return;
      const text = this.buf.slice(start, stop + 1);
      this.buf = this.buf.slice(stop + 1);
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        continue;
      }
      if (!isObject(v) || typeof v['data'] !== 'number') continue;
      const m: SyncMessage = { data: v['data'] };
      if (typeof v['message'] === 'string') m.message = v['message'];
      const w = this.waiting.shift();
      if (w) w.resolve(m);
      else this.queue.push(m);
    }
  }

  /**
   * Closes our end. conmon keeps its end of a container's sync pipe for the container's life: a
   * daemon that kept reading it held one descriptor per running container (10,000 containers:
   * half of nofile here). conmon goes on without a reader, as it does after a daemon restart.
   */
  close(): void {
    this.stream.destroy();
  }

  next(timeoutMs = 60_000): Promise<SyncMessage> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.closed) return Promise.reject(unavailable(`conmon closed its ${this.what} pipe without reporting`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(unavailable(`conmon did not report on its ${this.what} pipe in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiting.push({
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    });
  }
}

export interface ConmonHandle {
  /** the process started (conmon before it daemonizes; a session of its own) */
  pid: number;
  sync: SyncReader;
  attachPipe: SyncReader | null;
  startPipe: Writable | null;
  stderr: () => string;
  /** Settles once conmon's stderr is closed (all of it read) or `deadlineMs` passed, whichever is first. */
  stderrClosed: (deadlineMs: number) => Promise<void>;
}

// the runtime's failure text, typed (errors.ts); re-exported for the callers of this module
export { isCommandNotFound, runtimeError } from './errors.js';

/** Starts conmon; settles once it has exec'd (the spawn runs off the event loop: base/spawn.ts). */
export async function startConmon(
  path: string,
  args: string[],
  opts: { attach: boolean; pathPrefix?: string; cwd: string },
): Promise<ConmonHandle> {
  // conmon passes its environment on to the runtime: see pinBinary in oci.ts for the second
  // variable; `pathPrefix` puts berth's CRIU first for a runtime that finds it in PATH (crun)
  const PATH = process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  const env: Record<string, string> = {
    PATH: opts.pathPrefix ? `${opts.pathPrefix}:${PATH}` : PATH,
    _OCI_SYNCPIPE: '3',
    _LIBCONTAINER_CLONED_BINARY: '1',
  };
  if (opts.attach) {
    env['_OCI_ATTACHPIPE'] = '4';
    env['_OCI_STARTPIPE'] = '5';
  }
  const child = await spawnProcessAsync(
    path,
    args,
    env,
    // in its bundle's directory: conmon writes an `oom` file into its working directory when the
    // container is OOM-killed (it landed wherever berthd had been started)
    opts.attach
      ? { out: [2, 3, 4], into: [5], detached: true, cwd: opts.cwd }
      : { out: [2, 3], detached: true, cwd: opts.cwd },
  );
  let err = '';
  const errStream = child.out.get(2)!;
  errStream.on('data', (d: Buffer) => (err += d.toString()));
  const closed = new Promise<void>((resolve) => {
    errStream.once('close', resolve);
    errStream.once('end', resolve);
    errStream.once('error', () => resolve());
  });
  const sync = new SyncReader(child.out.get(3)!, 'sync');
  return {
    pid: child.pid,
    sync,
    attachPipe: opts.attach ? new SyncReader(child.out.get(4)!, 'attach') : null,
    startPipe: opts.attach ? child.in.get(5)! : null,
    stderr: () => err,
    stderrClosed: (deadlineMs) => within(closed, deadlineMs),
  };
}

/** `p`, or nothing once `ms` passed first. */
function within(p: Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  const cut = new Promise<void>((resolve) => (t = setTimeout(resolve, ms)));
  return Promise.race([p, cut]).finally(() => clearTimeout(t));
}
