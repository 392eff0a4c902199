/**
 * One exec or attach session once its streams are there, whatever carries them (SPDY streams or
 * websocket channels): runs the backend with the client's stdin, stdout, stderr and resizes, then
 * ends the output streams and writes the final status on the error stream, as kubelet's
 * ServeExec/ServeAttach do (pkg/kubelet/cri/streaming/remotecommand). The caller closes the
 * connection afterwards.
 */
import type { Readable, Writable } from 'node:stream';
import type { StreamIO, TermSize } from './backend.js';
import { resizeEvents } from './resize.js';
import { encodeStatus, exitStatus, internalStatus, successStatus, type Status } from './status.js';

export interface CommandStreams {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  resize?: Readable;
  /** Where the status goes; ended after it. */
  error: Writable;
}

export type CommandRun =
  | { kind: 'exec'; cmd: string[]; run: (io: StreamIO, signal: AbortSignal) => Promise<number> }
  | { kind: 'attach'; run: (io: StreamIO, signal: AbortSignal) => Promise<void> };

/**
 * Resize events, kept by the server so a backend that never reads them cannot stall the
 * connection: the newest 16 wait for the backend, older ones are dropped.
 */
class ResizeQueue implements AsyncIterable<TermSize> {
  private readonly items: TermSize[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(source: Readable) {
    void (async () => {
      for await (const s of resizeEvents(source)) {
        this.items.push(s);
        if (this.items.length > 16) this.items.shift();
        this.wake?.();
      }
      this.end();
    })();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TermSize> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

function endAndWait(w: Writable | undefined, signal: AbortSignal): Promise<void> {
  if (!w || w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    w.once('close', done);
    if (w.writableFinished) done();
    else {
      w.once('finish', done);
      if (!w.writableEnded) w.end();
    }
  });
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Runs the session to its end. `json` picks the status encoding (v4 and later). Resolves once the
 * status is written (or the client is gone: `signal` aborted).
 */
export async function runCommand(c: CommandRun, s: CommandStreams, json: boolean, signal: AbortSignal): Promise<void> {
  const resizes = s.resize ? new ResizeQueue(s.resize) : undefined;
  const io: StreamIO = {};
  if (s.stdin) io.stdin = s.stdin;
  if (s.stdout) io.stdout = s.stdout;
  if (s.stderr) io.stderr = s.stderr;
  if (resizes) io.resizes = resizes;
  let status: Status;
  try {
    if (c.kind === 'exec') {
      const code = await c.run(io, signal);
      status = code === 0 ? successStatus() : exitStatus(c.cmd, code);
    } else {
      await c.run(io, signal);
      status = successStatus();
    }
  } catch (e) {
    const what = c.kind === 'exec' ? 'error executing command in container' : 'error attaching to container';
    status = internalStatus(`${what}: ${message(e)}`);
  } finally {
    resizes?.end();
  }
  if (signal.aborted) return;
  await Promise.all([endAndWait(s.stdout, signal), endAndWait(s.stderr, signal)]);
  if (signal.aborted) return;
  const bytes = encodeStatus(status, json);
  if (bytes.length > 0) s.error.write(bytes);
  await endAndWait(s.error, signal);
}
