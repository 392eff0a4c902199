/**
 * Exec and attach over websocket (RFC 6455), in the channel protocols of k8s.io/apiserver's
 * wsstream as kubelet serves them (cri/streaming/remotecommand/websocket.go) plus v5:
 * every binary message starts with its channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (the
 * status), 4 resize. `v5.channel.k8s.io` adds the close message `[255, channel]` from the client,
 * which half-closes that channel (stdin's end reaches the process). No subprotocol at all is
 * `channel.k8s.io`; the `base64.` variants carry the same in text messages. Port forwarding over
 * websocket is at the end. The framing is ws-conn.ts.
 */
import type { IncomingMessage } from 'node:http';
import { Duplex, PassThrough, Writable } from 'node:stream';
import type { Clock } from '../../base/clock.js';
import type { CommandRun } from './remotecommand.js';
import { runCommand } from './remotecommand.js';
import { acceptKey, WsConn } from './ws-conn.js';

export const WEBSOCKET_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
] as const;

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const up = String(req.headers['upgrade'] ?? '').toLowerCase();
  const conn = String(req.headers['connection'] ?? '').toLowerCase();
  return up.split(',').some((s) => s.trim() === 'websocket') && conn.includes('upgrade');
}

/**
 * How a channel message travels: binary, the channel as its first byte; or, for the `base64.`
 * protocols (wsstream's base64Codec, for clients that cannot send binary), a text message whose first
 * character is the channel as a digit and the rest the data in base64.
 */
interface ChannelCodec {
  send(ws: WsConn, channel: number, data: Buffer): boolean;
  /** The channel and data of a message; null for one that is not valid in this codec. */
  read(m: Buffer): { channel: number; data: Buffer } | null;
}

const binaryCodec: ChannelCodec = {
  send: (ws, channel, data) => ws.write(2, Buffer.concat([Buffer.from([channel]), data])),
  read: (m) => (m.length === 0 ? null : { channel: m[0]!, data: m.subarray(1) }),
};

const base64Codec: ChannelCodec = {
  send: (ws, channel, data) => ws.write(1, Buffer.from(String.fromCharCode(48 + channel) + data.toString('base64'))),
  read: (m) => {
    const channel = (m[0] ?? 0) - 48;
    const text = m.subarray(1).toString('latin1');
    if (channel < 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
    return { channel, data: Buffer.from(text, 'base64') };
  },
};

const codecOf = (protocol: string): ChannelCodec => (protocol.includes('base64.') ? base64Codec : binaryCodec);

/** A writable that sends each chunk as a message on `channel`. */
function channelWriter(ws: WsConn, codec: ChannelCodec, channel: number): Writable {
  const w = new Writable({
    highWaterMark: 32 * 1024,
    write(chunk: Buffer, _enc, cb) {
      let ok = true;
      for (let off = 0; off < chunk.length; off += 64 * 1024) {
        ok = codec.send(ws, channel, chunk.subarray(off, off + 64 * 1024));
      }
      if (ok || ws.socket.destroyed) cb();
      else ws.socket.once('drain', () => cb());
    },
  });
  w.on('error', () => {});
  return w;
}

interface WsOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

function badRequest(socket: Duplex, msg: string): void {
  socket.end(
    'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n' +
      `Content-Length: ${Buffer.byteLength(msg) + 1}\r\n\r\n${msg}\n`,
  );
}

/**
 * The RFC 6455 handshake (4.2.2): the first of the client's subprotocols in `supported`, none at all
 * meaning `fallback`. Answers 101 and returns the protocol, or answers 400 and returns null.
 */
function handshake(
  req: IncomingMessage,
  socket: Duplex,
  supported: readonly string[],
  fallback: string,
): string | null {
  const key = req.headers['sec-websocket-key'];
  const version = req.headers['sec-websocket-version'];
  const refuse = (msg: string): null => {
    badRequest(socket, msg);
    return null;
  };
  if (typeof key !== 'string' || Buffer.from(key, 'base64').length !== 16) return refuse('bad Sec-WebSocket-Key');
  if (version !== '13') return refuse('unsupported Sec-WebSocket-Version');
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  let protocol: string | undefined;
  if (offered.length > 0) {
    protocol = offered.find((p) => supported.includes(p));
    if (!protocol) return refuse(`unable to negotiate protocol: client supports [${offered.join(' ')}]`);
  }
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n` +
      (protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : '') +
      '\r\n',
  );
  return protocol ?? fallback;
}

const untilClosed = (socket: Duplex): Promise<void> =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });

/** Upgrades to websocket and runs one exec or attach; resolves when it is over. */
export async function serveWebSocketCommand(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  command: CommandRun,
  opts: WsOptions,
  outer: AbortSignal,
  clock: Clock,
): Promise<void> {
  const proto = handshake(req, socket, WEBSOCKET_PROTOCOLS, 'channel.k8s.io');
  if (!proto) return;

  const ac = new AbortController();
  const abort = () => ac.abort(new Error('the client went away'));
  outer.addEventListener('abort', abort, { once: true });
  const stdin = opts.stdin ? new PassThrough({ highWaterMark: 64 * 1024 }) : undefined;
  const resize = opts.tty ? new PassThrough() : undefined;
  const v5 = proto === 'v5.channel.k8s.io';
  const codec = codecOf(proto);
  const ws: WsConn = new WsConn(
    socket,
    (m) => {
      const msg = codec.read(m);
      if (!msg) return;
      const { channel: ch, data } = msg;
      if (ch === STDIN && stdin && !stdin.writableEnded) {
        if (!stdin.write(data)) {
          socket.pause();
          stdin.once('drain', () => socket.resume());
        }
      } else if (ch === RESIZE && resize && !resize.writableEnded) {
        resize.write(data);
      } else if (ch === CLOSE && v5 && data.length >= 1) {
        if (data[0] === STDIN) stdin?.end();
        if (data[0] === RESIZE) resize?.end();
      }
    },
    () => {
      stdin?.end();
      resize?.end();
      abort();
    },
    clock,
  );
  if (outer.aborted) abort();
  ac.signal.addEventListener('abort', () => ws.socket.destroy(), { once: true });
  ws.feed(head);

  const stdout = opts.stdout ? channelWriter(ws, codec, STDOUT) : undefined;
  const stderr = opts.stderr && !opts.tty ? channelWriter(ws, codec, STDERR) : undefined;
  const error = channelWriter(ws, codec, ERROR);
  // kubelet's "connection established" signal: an empty message on the lowest writable channel.
  codec.send(ws, stdout ? STDOUT : stderr ? STDERR : ERROR, Buffer.alloc(0));

  await runCommand(
    command,
    {
      error,
      ...(stdin ? { stdin } : {}),
      ...(stdout ? { stdout } : {}),
      ...(stderr ? { stderr } : {}),
      ...(resize ? { resize } : {}),
    },
    proto.startsWith('v'),
    ac.signal,
  );
  outer.removeEventListener('abort', abort);
  if (!ac.signal.aborted) ws.close(1000);
  await untilClosed(socket);
}

/** Port forwarding over websocket: `v4.channel.k8s.io`, or no subprotocol. */
export const WEBSOCKET_PORTFORWARD_PROTOCOLS = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io'] as const;

/**
 * Port forwarding over websocket (kubelet's cri/streaming/portforward/websocket.go): one forwarding
 * per port of the request, on channels 2i (data, both ways) and 2i+1 (error), each opened with the
 * port as 16-bit little endian. A failure is written on the error channel; the connection closes
 * once every forwarding is over.
 */
export async function serveWebSocketPortForward(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: { podSandboxId: string; ports: number[] },
  forward: (port: number, stream: Duplex, signal: AbortSignal) => Promise<void>,
  outer: AbortSignal,
  clock: Clock,
): Promise<void> {
  if (target.ports.length === 0 || target.ports.length > 100) {
    return badRequest(socket, 'port forwarding over websocket needs 1 to 100 ports in the request');
  }
  const proto = handshake(req, socket, WEBSOCKET_PORTFORWARD_PROTOCOLS, 'channel.k8s.io');
  if (!proto) return;
  const codec = codecOf(proto);
  const ac = new AbortController();
  const abort = () => ac.abort(new Error('the client went away'));
  outer.addEventListener('abort', abort, { once: true });
  const inputs = target.ports.map(() => new PassThrough({ highWaterMark: 64 * 1024 }));
  const ws: WsConn = new WsConn(
    socket,
    (m) => {
      const msg = codec.read(m);
      if (!msg) return;
      const input = msg.channel % 2 === 0 ? inputs[msg.channel / 2] : undefined;
      if (input && !input.writableEnded && !input.write(msg.data)) {
        socket.pause();
        input.once('drain', () => socket.resume());
      }
    },
    () => {
      for (const i of inputs) i.end();
      abort();
    },
    clock,
  );
  if (outer.aborted) abort();
  ac.signal.addEventListener('abort', () => ws.socket.destroy(), { once: true });
  ws.feed(head);
  await Promise.all(
    target.ports.map(async (port, i) => {
      const le = Buffer.alloc(2);
      le.writeUInt16LE(port, 0);
      const out = channelWriter(ws, codec, 2 * i);
      const error = channelWriter(ws, codec, 2 * i + 1);
      out.write(le);
      error.write(le);
      const data = Duplex.from({ readable: inputs[i]!, writable: out });
      data.on('error', () => {});
      try {
        await forward(port, data, ac.signal);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        error.write(`error forwarding port ${port} to pod ${target.podSandboxId}, uid : ${msg}`);
      }
    }),
  );
  outer.removeEventListener('abort', abort);
  if (!ac.signal.aborted) ws.close(1000);
  await untilClosed(socket);
}
