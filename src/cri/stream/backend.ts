/**
 * The contract between the CRI streaming server (src/cri/stream/: SPDY/3.1 and websocket framing,
 * kubelet's remotecommand and portforward protocols, one-time URLs) and whatever runs the process
 * (src/cri/: exec and attach in a CRI container, a TCP connection inside a pod's network namespace).
 * The server owns the wire; the backend owns the container. Neither knows the other's internals.
 */
import type { Duplex, Readable, Writable } from 'node:stream';

export interface TermSize {
  width: number;
  height: number;
}

/** The streams a client asked for. stderr is absent with a TTY (it is merged into stdout). */
export interface StreamIO {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  /** Terminal size changes, in order, when tty is set; ends when the client goes. */
  resizes?: AsyncIterable<TermSize>;
}

export interface ExecTarget {
  containerId: string;
  cmd: string[];
  tty: boolean;
}

export interface StreamBackend {
  /** Runs cmd in the container until it exits; resolves with its exit code. Rejects (BerthError) if it cannot start. */
  exec(target: ExecTarget, io: StreamIO, signal: AbortSignal): Promise<number>;
  /** Attaches to the container's main process until it exits or the client goes. */
  attach(containerId: string, tty: boolean, io: StreamIO, signal: AbortSignal): Promise<void>;
  /** Connects stream to localhost:port inside the pod sandbox's network namespace, until either side closes. */
  portForward(podSandboxId: string, port: number, stream: Duplex, signal: AbortSignal): Promise<void>;
}
