/**
 * The streaming server's backend (./stream/backend.ts) over berth's engine: exec and attach in a
 * CRI container through conmon's attach sessions, port-forward to localhost inside a pod's network
 * namespace. The server owns the wire; this owns the processes.
 */
import { open, stat } from 'node:fs/promises';
import type { Duplex, Readable, Writable } from 'node:stream';
import { failedPrecondition } from '../base/errors.js';
import { log } from '../base/log.js';
import type { AttachSession, K8sVerbs } from '../engine/k8s.js';
import { LogParser, type LogLine } from '../engine/logs.js';
import type { ExecTarget, StreamBackend, StreamIO, TermSize } from './stream/backend.js';
import type { Sandboxes } from './sandboxes.js';

/** How long output may trail a process's exit on its attach session before the call ends. */
const DRAIN_MS = 2000;

type Sent = Record<'stdout' | 'stderr', number>;

const writerOf =
  (io: StreamIO, tty: boolean) =>
  (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
    const out: Writable | undefined = stream === 'stderr' && !tty ? io.stderr : io.stdout;
    if (out && !out.destroyed) out.write(chunk);
  };

/**
 * conmon can drop an attach client's last packets when the process exits (its k8s-file log has
 * them all): what the log holds from `from` beyond what the session delivered is sent now.
 */
async function resendRest(path: string, from: number, sent: Sent, write: (s: 'stdout' | 'stderr', b: Buffer) => void) {
  const fh = await open(path).catch(() => null);
  if (!fh) return;
  const parser = new LogParser();
  const seen: Sent = { stdout: 0, stderr: 0 };
  const emit = (l: LogLine) => {
    const b = Buffer.from(l.text);
    const skip = Math.max(0, sent[l.stream] - seen[l.stream]);
    seen[l.stream] += b.length;
    if (skip < b.length) write(l.stream, b.subarray(skip));
  };
  try {
    const buf = Buffer.alloc(64 * 1024);
    for (let pos = from; ;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      parser.push(buf.subarray(0, bytesRead), emit);
    }
    parser.flush(emit);
  } finally {
    await fh.close();
  }
}

function pump(session: AttachSession, io: StreamIO, tty: boolean, sent: Sent): Promise<void> {
  const write = writerOf(io, tty);
  return new Promise<void>((resolve) => {
    session.onOutput((stream, chunk) => {
      sent[stream] += chunk.length;
      write(stream, chunk);
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
    const sent: Sent = { stdout: 0, stderr: 0 };
    const ended = pump(session, io, target.tty, sent);
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
      if (!signal.aborted) await resendRest(handle.logPath, 0, sent, writerOf(io, target.tty));
      return code;
    } finally {
      signal.removeEventListener('abort', onAbort);
      session.close();
    }
  }

  async attach(containerId: string, tty: boolean, io: StreamIO, signal: AbortSignal): Promise<void> {
    const logPath = this.k8s.get(containerId).logPath;
    const from = await stat(logPath).then(
      (st) => st.size,
      () => 0,
    );
    const session = await this.k8s.attach(containerId, io.stdin !== undefined);
    const sent: Sent = { stdout: 0, stderr: 0 };
    const ended = pump(session, io, tty, sent);
    void follow(io.resizes, (s) => this.k8s.resize(containerId, s.height, s.width));
    const gone = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    try {
      const exited = await Promise.race([ended.then(() => true), gone.then(() => false)]);
      if (exited) await resendRest(logPath, from, sent, writerOf(io, tty));
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
