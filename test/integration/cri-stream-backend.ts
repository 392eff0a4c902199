/**
 * A StreamBackend over real local processes and real loopback sockets, for the streaming server's
 * tests: exec runs `cmd` on the host (through a pty from @lydell/node-pty when tty is set), attach
 * joins a process the test started under a "container id", port-forward connects to 127.0.0.1:port.
 * It records how each call ended so tests can see the abort signal do its work.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import pty from '@lydell/node-pty';
import { notFound } from '../../src/base/errors.js';
import type { ExecTarget, StreamBackend, StreamIO, TermSize } from '../../src/cri/stream/backend.js';

export interface CallRecord {
  kind: 'exec' | 'attach' | 'portforward';
  /** 'exited' (ran to its end), 'aborted' (the signal fired first), 'failed'. */
  outcome: Promise<'exited' | 'aborted' | 'failed'>;
  resizes: TermSize[];
}

export class LocalBackend implements StreamBackend {
  readonly calls: CallRecord[] = [];
  /** The streams of the latest exec, for tests that look at what the server buffers. */
  lastIo: StreamIO | undefined;
  /** While set, exec in container "gated" does not read stdin until it resolves. */
  gate: Promise<void> | undefined;
  private readonly containers = new Map<string, ChildProcess>();
  private waiters: (() => void)[] = [];

  /** Starts a long-running "container" process attach can join. */
  startContainer(id: string, script: string): ChildProcess {
    const p = spawn('sh', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    p.stdin!.on('error', () => {});
    this.containers.set(id, p);
    return p;
  }

  killAll(): void {
    for (const p of this.containers.values()) p.kill('SIGKILL');
  }

  /** Resolves when the n-th call (1-based) has been made. */
  async call(n: number): Promise<CallRecord> {
    while (this.calls.length < n) await new Promise<void>((r) => this.waiters.push(r));
    return this.calls[n - 1]!;
  }

  private record(kind: CallRecord['kind'], outcome: Promise<'exited' | 'aborted' | 'failed'>): CallRecord {
    const rec: CallRecord = { kind, outcome, resizes: [] };
    this.calls.push(rec);
    for (const w of this.waiters.splice(0)) w();
    return rec;
  }

  exec(target: ExecTarget, io: StreamIO, signal: AbortSignal): Promise<number> {
    if (target.containerId === 'missing') {
      this.record('exec', Promise.resolve('failed'));
      return Promise.reject(notFound('no such container: missing'));
    }
    let settle!: (o: 'exited' | 'aborted' | 'failed') => void;
    const rec = this.record('exec', new Promise((r) => (settle = r)));
    this.lastIo = io;
    const [file, ...args] = target.cmd;
    if (target.tty) return this.execTty(file!, args, io, signal, rec, settle);
    return this.execPipes(file!, args, io, signal, settle, target.containerId === 'gated');
  }

  private execPipes(
    file: string,
    args: string[],
    io: StreamIO,
    signal: AbortSignal,
    settle: (o: 'exited' | 'aborted' | 'failed') => void,
    gated: boolean,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const p = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      p.stdin.on('error', () => {});
      const stdin = io.stdin;
      const gate = gated ? this.gate : undefined;
      if (stdin && gate) void gate.then(() => stdin.pipe(p.stdin));
      else if (stdin) stdin.pipe(p.stdin);
      else p.stdin.end();
      if (io.stdout) p.stdout.pipe(io.stdout, { end: false });
      else p.stdout.resume();
      if (io.stderr) p.stderr.pipe(io.stderr, { end: false });
      else p.stderr.resume();
      const onAbort = () => p.kill('SIGKILL');
      signal.addEventListener('abort', onAbort, { once: true });
      p.once('error', (e) => {
        settle('failed');
        reject(e);
      });
      p.once('close', (code, sig) => {
        signal.removeEventListener('abort', onAbort);
        io.stdin?.unpipe(p.stdin);
        settle(signal.aborted ? 'aborted' : 'exited');
        resolve(code ?? (sig ? 128 + 9 : 1));
      });
    });
  }

  private execTty(
    file: string,
    args: string[],
    io: StreamIO,
    signal: AbortSignal,
    rec: CallRecord,
    settle: (o: 'exited' | 'aborted' | 'failed') => void,
  ): Promise<number> {
    return new Promise((resolve) => {
      const p = pty.spawn(file, args, { cols: 80, rows: 24, name: 'xterm' });
      p.onData((d) => io.stdout?.write(d));
      io.stdin?.on('data', (d: Buffer) => p.write(d.toString('utf8')));
      void (async () => {
        if (!io.resizes) return;
        for await (const r of io.resizes) {
          rec.resizes.push(r);
          p.resize(r.width, r.height);
        }
      })();
      const onAbort = () => p.kill('SIGKILL');
      signal.addEventListener('abort', onAbort, { once: true });
      p.onExit(({ exitCode }) => {
        signal.removeEventListener('abort', onAbort);
        settle(signal.aborted ? 'aborted' : 'exited');
        resolve(exitCode);
      });
    });
  }

  attach(containerId: string, _tty: boolean, io: StreamIO, signal: AbortSignal): Promise<void> {
    const p = this.containers.get(containerId);
    if (!p || p.exitCode !== null) {
      this.record('attach', Promise.resolve('failed'));
      return Promise.reject(notFound(`no such container: ${containerId}`));
    }
    let settle!: (o: 'exited' | 'aborted' | 'failed') => void;
    this.record('attach', new Promise((r) => (settle = r)));
    return new Promise((resolve) => {
      if (io.stdin) io.stdin.pipe(p.stdin!);
      if (io.stdout) p.stdout!.pipe(io.stdout, { end: false });
      if (io.stderr) p.stderr!.pipe(io.stderr, { end: false });
      const done = (o: 'exited' | 'aborted') => {
        signal.removeEventListener('abort', onAbort);
        p.off('close', onClose);
        if (io.stdin) io.stdin.unpipe(p.stdin!);
        if (io.stdout) p.stdout!.unpipe(io.stdout);
        if (io.stderr) p.stderr!.unpipe(io.stderr);
        settle(o);
        resolve();
      };
      const onAbort = () => done('aborted');
      const onClose = () => done('exited');
      signal.addEventListener('abort', onAbort, { once: true });
      p.once('close', onClose);
    });
  }

  portForward(_podSandboxId: string, port: number, stream: Duplex, signal: AbortSignal): Promise<void> {
    let settle!: (o: 'exited' | 'aborted' | 'failed') => void;
    this.record('portforward', new Promise((r) => (settle = r)));
    return new Promise((resolve, reject) => {
      const sock = connect({ host: '127.0.0.1', port });
      const onAbort = () => sock.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      sock.once('error', (e) => {
        signal.removeEventListener('abort', onAbort);
        settle(signal.aborted ? 'aborted' : 'failed');
        reject(e);
      });
      sock.once('connect', () => {
        stream.pipe(sock);
        sock.pipe(stream);
      });
      sock.once('close', (hadError) => {
        if (hadError) return;
        signal.removeEventListener('abort', onAbort);
        settle(signal.aborted ? 'aborted' : 'exited');
        resolve();
      });
    });
  }
}
