/**
 * The streaming server's backend (./stream/backend.ts) over berth's engine: exec and attach in a
 * CRI container through conmon's attach sessions, port-forward to localhost inside a pod's network
 * namespace. The server owns the wire; this owns the processes.
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import { failedPrecondition } from '../base/errors.js';
import { log } from '../base/log.js';
import type { AttachSession, K8sVerbs } from '../engine/k8s.js';
import type { ExecTarget, StreamBackend, StreamIO, TermSize } from './stream/backend.js';
import type { Sandboxes } from './sandboxes.js';

/** How long output may trail a process's exit on its attach session before the call ends. */
const DRAIN_MS = 2000;

function pump(session: AttachSession, io: StreamIO, tty: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    session.onOutput((stream, chunk) => {
      const out: Writable | undefined = stream === 'stderr' && !tty ? io.stderr : io.stdout;
      if (out && !out.destroyed) out.write(chunk);
    });
    session.onEnd(() => resolve());
    const stdin: Readable | undefined = io.stdin;
    const sink = session.stdin;
    if (stdin && sink) {
      stdin.on('data', (c: Buffer) => sink.write(c));
      stdin.on('end', () => session.closeStdin());
      stdin.on('error', () => session.closeStdin());
    }
  });
}

async function follow(resizes: AsyncIterable<TermSize> | undefined, resize: (s: TermSize) => Promise<void>) {
  if (!resizes) return;
  try {
    for await (const s of resizes) await resize(s).catch(() => undefined);
  } catch {
    /* the client went */
  }
}

export class CriStreamBackend implements StreamBackend {
  constructor(
    private readonly k8s: K8sVerbs,
    private readonly sandboxes: Sandboxes,
  ) {}

  async exec(target: ExecTarget, io: StreamIO, signal: AbortSignal): Promise<number> {
    const handle = await this.k8s.exec(target.containerId, target.cmd, target.tty, io.stdin !== undefined);
    const session = handle.attach;
    if (!session) throw failedPrecondition('exec: no attach session');
    const ended = pump(session, io, target.tty);
    void follow(io.resizes, (s) => handle.resize(s.height, s.width));
    const onAbort = () => {
      // the client went: the process goes too (kubelet's clients expect no orphans)
      try {
        process.kill(handle.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const code = await handle.wait();
      await Promise.race([ended, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
      return code;
    } finally {
      signal.removeEventListener('abort', onAbort);
      session.close();
    }
  }

  async attach(containerId: string, tty: boolean, io: StreamIO, signal: AbortSignal): Promise<void> {
    const session = await this.k8s.attach(containerId, io.stdin !== undefined);
    const ended = pump(session, io, tty);
    void follow(io.resizes, (s) => this.k8s.resize(containerId, s.height, s.width));
    const gone = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    try {
      await Promise.race([ended, gone]);
    } finally {
      session.close();
    }
  }

  async portForward(podSandboxId: string, port: number, stream: Duplex, signal: AbortSignal): Promise<void> {
    const s = this.sandboxes.readyOne(podSandboxId);
    const netns = this.k8s.netnsOf(s.c.id);
    const conn = this.k8s.connectIn(netns, port, signal);
    stream.pipe(conn.stream);
    conn.stream.pipe(stream);
    stream.on('error', () => conn.stream.destroy());
    conn.stream.on('error', (e) => {
      log.debug('cri: port-forward connection failed', { pod: s.c.id, port, err: e.message });
      stream.destroy();
    });
    await conn.done;
  }
}
