/**
 * The CRI streaming server: the URLs that Exec, Attach and PortForward return, and the wire behind
 * them (kubelet's pkg/kubelet/cri/streaming server, which containerd and CRI-O also serve).
 *
 * - `urlFor*` stores the request under a one-time token (random, 1 minute) and returns
 *   `http://ADDRESS:PORT/{exec,attach,portforward}/TOKEN`. The first request on that path uses the
 *   token up; an unknown, used or expired token is a 404.
 * - Exec and attach speak remotecommand v1-v4 over SPDY/3.1 and the channel protocols
 *   (`channel.k8s.io`, `v4.channel.k8s.io`, `v5.channel.k8s.io`) over websocket; port forwarding
 *   speaks `portforward.k8s.io` over SPDY/3.1.
 * - The backend runs the process or connects the port; its AbortSignal fires when the client goes
 *   away or the server closes. A malformed frame ends only its own connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../../base/clock.js';
import { BerthError, codeOfErrno, failedPrecondition, invalidArgument } from '../../base/errors.js';
import type { StreamBackend } from './backend.js';
import type { CommandRun } from './remotecommand.js';
import { PORTFORWARD_PROTOCOLS, serveSpdyPortForward } from './spdy/portforward.js';
import {
  REMOTECOMMAND_PROTOCOLS,
  serveSpdyCommand,
  type CommandOptions,
  type RemoteCommandProtocol,
} from './spdy/remotecommand.js';
import { SpdySession } from './spdy/session.js';
import type { SpdyStream } from './spdy/stream.js';
import { TokenCache } from './tokens.js';
import { isWebSocketUpgrade, serveWebSocketCommand, serveWebSocketPortForward } from './websocket.js';

export interface StreamServerOptions {
  backend: StreamBackend;
  address: string;
  port: number;
  clock: Clock;
}

export interface ExecRequest {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface AttachRequest {
  containerId: string;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface PortForwardRequest {
  podSandboxId: string;
  ports: number[];
}

type Pending =
  | { kind: 'exec'; req: ExecRequest }
  | { kind: 'attach'; req: AttachRequest }
  | { kind: 'portforward'; req: PortForwardRequest };

/** A connection in use: ends its backend call and its socket on `abort`. */
interface Session {
  abort(): void;
  done: Promise<void>;
}

/** How long close() waits for backends to return after their signal fired. */
const CLOSE_GRACE_MS = 10_000;

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** A plain-text HTTP response written straight on a socket (an upgrade request we do not take). */
function refuse(socket: Duplex, status: number, body: string, extra: [string, string][] = []): void {
  const text = `${body}\n`;
  const head = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(text)}`,
    'Connection: close',
    ...extra.map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${text}`);
}

function headerList(req: IncomingMessage, name: string): string[] {
  const raw = req.headers[name];
  const all = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  return all.flatMap((v) => v.split(',').map((s) => s.trim())).filter((s) => s.length > 0);
}

/** httpstream.Handshake: the client's first protocol the server speaks. */
function negotiate<T extends string>(req: IncomingMessage, server: readonly T[]): T | null | undefined {
  const client = headerList(req, 'x-stream-protocol-version');
  if (client.length === 0) return undefined;
  for (const c of client) {
    const m = server.find((s) => s === c);
    if (m) return m;
  }
  return null;
}

function validateStreams(r: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  // kubelet's validateExecRequest / validateAttachRequest.
  if (r.tty && r.stderr) throw invalidArgument('tty and stderr cannot both be true');
  if (!r.stdin && !r.stdout && !r.stderr) throw invalidArgument('one of stdin, stdout, or stderr must be set');
}

export class StreamServer {
  private readonly tokens: TokenCache<Pending>;
  private readonly sessions = new Set<Session>();
  private server: Server | undefined;
  private base: string | undefined;

  constructor(private readonly opts: StreamServerOptions) {
    this.tokens = new TokenCache(opts.clock);
  }

  /** Listens on address:port (port 0: any free port). */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.onRequest(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    server.on('clientError', (_e, socket: Duplex) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new BerthError(
            e.code === 'EADDRINUSE'
              ? 'Conflict'
              : e.code === 'EADDRNOTAVAIL'
                ? 'InvalidArgument'
                : codeOfErrno(e.code ?? ''),
            `streaming server: cannot listen on ${this.opts.address}:${this.opts.port}: ${e.message}`,
            { cause: e },
          ),
        ),
      );
      server.listen(this.opts.port, this.opts.address, () => {
        server.removeAllListeners('error');
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    const host = a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]` : a.address;
    this.base = `http://${host}:${a.port}`;
    this.server = server;
  }

  /**
   * Stops listening and ends every open session: sockets closed, backends' signals aborted. Waits
   * for the backends to return, at most 10 s.
   */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sessions) s.abort();
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    // Every socket is gone now; wait for the backends to see their signal, but not for ever.
    await Promise.race([Promise.all([...this.sessions].map((s) => s.done)), this.opts.clock.sleep(CLOSE_GRACE_MS)]);
  }

  /** The URL the client of an Exec RPC connects to. InvalidArgument for a request kubelet refuses too. */
  urlForExec(req: ExecRequest): string {
    if (!req.containerId) throw invalidArgument('exec: a container id is required');
    if (req.cmd.length === 0) throw invalidArgument('exec: a command is required');
    validateStreams(req);
    return this.url('exec', { kind: 'exec', req: { ...req, cmd: [...req.cmd] } });
  }

  urlForAttach(req: AttachRequest): string {
    if (!req.containerId) throw invalidArgument('attach: a container id is required');
    validateStreams(req);
    return this.url('attach', { kind: 'attach', req: { ...req } });
  }

  urlForPortForward(req: PortForwardRequest): string {
    if (!req.podSandboxId) throw invalidArgument('port-forward: a pod sandbox id is required');
    for (const p of req.ports) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalidArgument(`port-forward: invalid port ${p}`);
    }
    return this.url('portforward', { kind: 'portforward', req: { ...req, ports: [...req.ports] } });
  }

  private url(path: string, p: Pending): string {
    if (!this.base) throw failedPrecondition('the streaming server is not listening');
    return `${this.base}/${path}/${this.tokens.insert(p)}`;
  }

  /** The pending request a path names, using its token up; undefined answers 404. */
  private route(req: IncomingMessage): Pending | undefined {
    const m = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]{1,64})(?:\?.*)?$/.exec(req.url ?? '');
    if (!m) return undefined;
    const p = this.tokens.consume(m[2]!);
    return p && p.kind === m[1] ? p : undefined;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const p = this.route(req);
    const status = !p ? 404 : req.method !== 'GET' && req.method !== 'POST' ? 405 : 400;
    const body =
      status === 404
        ? '404 page not found'
        : status === 405
          ? 'method not allowed'
          : 'unable to upgrade: missing upgrade headers in request';
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
    res.end(`${body}\n`);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    // Small frames (WINDOW_UPDATE, PING, a keystroke) must not wait for Nagle; Go's sockets, kubelet's, do the same.
    if (socket instanceof Socket) socket.setNoDelay(true);
    if (!this.server) return refuse(socket, 503, 'the streaming server is closing');
    const p = this.route(req);
    if (!p) return refuse(socket, 404, '404 page not found');
    if (req.method !== 'GET' && req.method !== 'POST') return refuse(socket, 405, 'method not allowed');
    if (isWebSocketUpgrade(req)) {
      if (p.kind === 'portforward') {
        const backend = this.opts.backend;
        const { podSandboxId } = p.req;
        return this.track((signal) =>
          serveWebSocketPortForward(
            req,
            socket,
            head,
            p.req,
            (port, stream, sig) => backend.portForward(podSandboxId, port, stream, sig),
            signal,
            this.opts.clock,
          ),
        );
      }
      return this.track((signal) =>
        serveWebSocketCommand(req, socket, head, this.command(p), p.req, signal, this.opts.clock),
      );
    }
    const upgrade = headerList(req, 'upgrade').map((s) => s.toLowerCase());
    if (!upgrade.includes('spdy/3.1')) {
      return refuse(socket, 400, 'unable to upgrade: missing upgrade headers in request');
    }
    const server = p.kind === 'portforward' ? PORTFORWARD_PROTOCOLS : REMOTECOMMAND_PROTOCOLS;
    const protocol = negotiate<string>(req, server);
    if (protocol === undefined) return refuse(socket, 400, 'unable to upgrade: X-Stream-Protocol-Version is required');
    if (protocol === null) {
      const client = headerList(req, 'x-stream-protocol-version').join(' ');
      const accepts = server.join(' ');
      const msg =
        'unable to upgrade: unable to negotiate protocol: ' +
        `client supports [${client}], server accepts [${accepts}]`;
      return refuse(
        socket,
        403,
        msg,
        server.map((s) => ['X-Accepted-Stream-Protocol-Versions', s]),
      );
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
    );
    let handler: (s: SpdyStream) => void = (s) => s.reset();
    const session = new SpdySession(socket, { clock: this.opts.clock, onStream: (s) => handler(s) });
    this.track(async (signal) => {
      signal.addEventListener('abort', () => session.destroy(), { once: true });
      if (p.kind === 'portforward') {
        handler = serveSpdyPortForward(session, p.req, this.opts.backend, this.opts.clock, signal);
        session.feed(head);
        await session.done;
        return;
      }
      const opts: CommandOptions = { stdin: p.req.stdin, stdout: p.req.stdout, stderr: p.req.stderr, tty: p.req.tty };
      const run = serveSpdyCommand(
        session,
        protocol as RemoteCommandProtocol,
        opts,
        this.command(p),
        this.opts.clock,
        signal,
        (h) => (handler = h),
      );
      session.feed(head);
      await run;
      session.close();
      await session.done;
    }, session);
  }

  private command(p: Exclude<Pending, { kind: 'portforward' }>): CommandRun {
    const backend = this.opts.backend;
    if (p.kind === 'exec') {
      const { containerId, cmd, tty } = p.req;
      return { kind: 'exec', cmd, run: (io, signal) => backend.exec({ containerId, cmd, tty }, io, signal) };
    }
    const { containerId, tty } = p.req;
    return { kind: 'attach', run: (io, signal) => backend.attach(containerId, tty, io, signal) };
  }

  /**
   * Runs one connection's work with an AbortSignal that fires when the client goes away (the
   * session closes) or the server closes; the work's failure never escapes.
   */
  private track(work: (signal: AbortSignal) => Promise<void>, session?: SpdySession): void {
    const ac = new AbortController();
    session?.once('close', () => ac.abort(new Error('the client went away')));
    const done = work(ac.signal).then(
      () => undefined,
      () => undefined,
    );
    const s: Session = { abort: () => ac.abort(new Error('the streaming server is closing')), done };
    this.sessions.add(s);
    void done.then(() => {
      this.sessions.delete(s);
      ac.abort(new Error('the session ended'));
    });
  }
}
