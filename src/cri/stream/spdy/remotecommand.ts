/**
 * remotecommand over SPDY (kubelet's pkg/kubelet/cri/streaming/remotecommand/httpstream.go):
 * the client opens one stream per `streamType` header (error, stdin, stdout, stderr, resize); when
 * all the streams the request asked for are there, the command runs. v1 and v2 have no resize
 * stream; v1-v3 write only a failure's message on the error stream, v4 a metav1.Status as JSON.
 */
import type { Clock } from '../../../base/clock.js';
import { runCommand, type CommandRun } from '../remotecommand.js';
import { RstStatus } from './frames.js';
import type { SpdySession } from './session.js';
import type { SpdyStream } from './stream.js';

/** Protocol names, newest first: the order kubelet's SupportedStreamingProtocols lists them. */
export const REMOTECOMMAND_PROTOCOLS = [
  'v4.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
  'channel.k8s.io',
] as const;

export type RemoteCommandProtocol = (typeof REMOTECOMMAND_PROTOCOLS)[number];

export function protocolVersion(p: RemoteCommandProtocol): number {
  return p === 'channel.k8s.io' ? 1 : Number(p[1]);
}

/** kubelet's streamCreationTimeout default. */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

export interface CommandOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

type StreamType = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize';

/** The stream types this request expects, as kubelet counts them (stderr is never there with a TTY). */
export function expectedStreamTypes(o: CommandOptions, version: number): Set<StreamType> {
  const s = new Set<StreamType>(['error']);
  if (o.stdin) s.add('stdin');
  if (o.stdout) s.add('stdout');
  if (o.stderr && !o.tty) s.add('stderr');
  if (o.tty && version >= 3) s.add('resize');
  return s;
}

/**
 * Serves one exec or attach on an upgraded SPDY session; resolves when the status is written or
 * the session died. Streams of an unknown, unasked-for or repeated type are reset (kubelet answers
 * them and ignores them; a reset tells the client instead).
 */
export function serveSpdyCommand(
  session: SpdySession,
  protocol: RemoteCommandProtocol,
  opts: CommandOptions,
  command: CommandRun,
  clock: Clock,
  signal: AbortSignal,
  setHandler: (h: (s: SpdyStream) => void) => void,
): Promise<void> {
  const version = protocolVersion(protocol);
  const expected = expectedStreamTypes(opts, version);
  const got = new Map<StreamType, SpdyStream>();
  return new Promise<Map<StreamType, SpdyStream> | null>((resolve) => {
    const timer = clock.setTimeout(() => {
      session.destroy('timed out waiting for client to create streams');
      resolve(null);
    }, STREAM_CREATION_TIMEOUT_MS);
    const onAbort = () => {
      timer.cancel();
      resolve(null);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    setHandler((s) => {
      const type = s.header('streamtype') as StreamType | undefined;
      if (!type || !expected.has(type) || got.has(type)) {
        s.reset(RstStatus.RefusedStream);
        return;
      }
      got.set(type, s);
      s.reply();
      if (got.size === expected.size) {
        timer.cancel();
        signal.removeEventListener('abort', onAbort);
        setHandler((late) => late.reset(RstStatus.RefusedStream));
        resolve(got);
      }
    });
  }).then(async (streams) => {
    if (!streams) return;
    const error = streams.get('error')!;
    const stdin = streams.get('stdin');
    const resize = streams.get('resize');
    // We never write on stdin or resize: say so now (client-go never reads them).
    stdin?.end();
    resize?.end();
    error.resume(); // The client sends nothing on the error stream; let its FIN through.
    const stdout = streams.get('stdout');
    const stderr = streams.get('stderr');
    await runCommand(
      command,
      {
        error,
        ...(stdin ? { stdin } : {}),
        ...(stdout ? { stdout } : {}),
        ...(stderr ? { stderr } : {}),
        ...(resize ? { resize } : {}),
      },
      version >= 4,
      signal,
    );
  });
}
