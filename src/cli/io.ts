/** Joining the terminal to a hijacked attach/exec connection: raw mode, resize, demux, stdin. */
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { Demux, type Client } from '../client/client.js';

export interface StreamOptions {
  tty: boolean;
  stdin: boolean;
  /** POST path to send terminal sizes to (`/containers/{id}/resize` or `/exec/{id}/resize`). */
  resizePath?: string;
}

/** Pipes the socket to stdout/stderr and (optionally) stdin to the socket; resolves when output ends. */
export function pumpStreams(client: Client, sock: Socket, o: StreamOptions): Promise<void> {
  return new Promise((resolve) => {
    const stdout = process.stdout;
    let restore: (() => void) | null = null;
    if (o.tty && o.stdin && process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      restore = () => process.stdin.setRawMode(false);
    }
    const resize = () => {
      if (!o.resizePath || !stdout.isTTY) return;
      void client.stream('POST', `${o.resizePath}?h=${stdout.rows}&w=${stdout.columns}`).then(
        (r) => r.resume(),
        () => undefined,
      );
    };
    if (o.tty) {
      resize();
      process.on('SIGWINCH', resize);
    }
    // stderr is made on first use: a run whose container writes nothing there never pays for it
    const demux = new Demux((s, b) => (s === 2 ? process.stderr : stdout).write(b));
    sock.on('data', (c: Buffer) => (o.tty ? stdout.write(c) : demux.push(c)));
    sock.resume(); // the client hands hijacked sockets over paused
    const done = () => {
      restore?.();
      process.off('SIGWINCH', resize);
      if (o.stdin) {
        process.stdin.unpipe(sock);
        process.stdin.pause();
      }
      resolve();
    };
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', done);
    if (o.stdin) {
      process.stdin.pipe(sock, { end: false });
      process.stdin.on('end', () => sock.end()); // half-close: the container sees EOF, output goes on
    }
  });
}

/** The messages of Docker's JSON progress stream (pull, push, build, load), blank lines skipped. */
export async function* jsonMessages(res: NodeJS.ReadableStream): AsyncGenerator<Record<string, unknown>> {
  const rl = createInterface({ input: res as NodeJS.ReadableStream & AsyncIterable<string>, crlfDelay: Infinity });
  for await (const line of rl) if (line.trim()) yield JSON.parse(line) as Record<string, unknown>;
}
