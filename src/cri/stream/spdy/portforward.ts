/**
 * Port forwarding over SPDY (`portforward.k8s.io`; kubelet's cri/streaming/portforward/httpstream.go):
 * for each forwarded connection the client opens an error stream and a data stream, both with the
 * headers `port` and `requestID`. Once both are there the backend connects the data stream to the
 * port in the pod; a failure is written on the error stream. Both streams end when the forwarding
 * does. The connection carries any number of these until the client closes it.
 */
import type { Clock, ClockTimer } from '../../../base/clock.js';
import type { StreamBackend } from '../backend.js';
import { RstStatus } from './frames.js';
import type { SpdySession } from './session.js';
import type { SpdyStream } from './stream.js';
import { STREAM_CREATION_TIMEOUT_MS } from './remotecommand.js';

export const PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'] as const;

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: ClockTimer;
}

/** A port header as kubelet takes it: a decimal 16-bit number, not 0. */
export function parsePort(v: string | undefined): number | null {
  if (!v || !/^[0-9]{1,5}$/.test(v)) return null;
  const n = Number(v);
  return n >= 1 && n <= 65535 ? n : null;
}

export interface PortForwardTarget {
  podSandboxId: string;
  /** The ports the CRI request named; empty means any (kubelet's SPDY path does not restrict). */
  ports: number[];
}

/**
 * Serves port forwarding on an upgraded SPDY session until it closes; `signal` aborts every
 * forwarding in progress.
 */
export function serveSpdyPortForward(
  session: SpdySession,
  target: PortForwardTarget,
  backend: StreamBackend,
  clock: Clock,
  signal: AbortSignal,
): (s: SpdyStream) => void {
  const pairs = new Map<string, Pair>();
  const allowed = new Set(target.ports);
  session.once('close', () => {
    for (const p of pairs.values()) p.timer.cancel();
    pairs.clear();
  });

  const forward = async (id: string, data: SpdyStream, error: SpdyStream, port: number) => {
    pairs.delete(id);
    try {
      if (allowed.size > 0 && !allowed.has(port)) {
        throw new Error(`port ${port} is not among the ports of this port-forward request`);
      }
      await backend.portForward(target.podSandboxId, port, data, signal);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (!error.destroyed && !error.writableEnded) {
        error.write(`error forwarding port ${port} to pod ${target.podSandboxId}, uid : ${msg}`);
      }
    } finally {
      if (!data.destroyed && !data.writableEnded) data.end();
      if (!error.destroyed && !error.writableEnded) error.end();
    }
  };

  return (s: SpdyStream) => {
    const port = parsePort(s.header('port'));
    const type = s.header('streamtype');
    if (port === null || (type !== 'error' && type !== 'data')) {
      s.reset(RstStatus.RefusedStream);
      return;
    }
    // Old clients send no requestID: kubelet pairs error stream N with data stream N+2.
    const id = s.header('requestid') || String(type === 'error' ? s.id : s.id - 2);
    let pair = pairs.get(id);
    if (!pair) {
      const timer = clock.setTimeout(() => {
        const p = pairs.get(id);
        pairs.delete(id);
        if (p?.error) {
          p.error.write(`(request=${id}) timed out waiting for streams`);
          p.error.end();
        }
        p?.data?.reset(RstStatus.Cancel);
      }, STREAM_CREATION_TIMEOUT_MS);
      pair = { timer };
      pairs.set(id, pair);
    }
    if (pair[type]) {
      s.reset(RstStatus.StreamInUse);
      return;
    }
    pair[type] = s;
    s.reply();
    if (type === 'error') s.resume(); // client-go half-closes it at once and only reads it
    if (pair.data && pair.error) {
      pair.timer.cancel();
      void forward(id, pair.data, pair.error, parsePort(pair.data.header('port')) ?? port);
    }
  };
}
