/**
 * SSH agent forwarding through a BuildKit session (moby/buildkit session/sshforward): the client
 * serves moby.sshforward.v1.SSH; the daemon asks CheckAgent{ID} before a RUN with
 * `--mount=type=ssh` and opens one ForwardAgent stream (metadata `buildkit.ssh.id: <id>`) per
 * connection on the RUN's agent socket, relaying bytes both ways as BytesMessage (sshforward's
 * Copy: the socket's EOF half-closes the stream, the stream's end half-closes the socket).
 */
import type { Duplex } from 'node:stream';
import type { SshAgents } from '../builder/types.js';
import { CHECK_AGENT, FORWARD_AGENT } from './protos.js';
import { GRPC, GrpcError } from './grpc-client.js';
import type { Session } from './session.js';

/** gRPC metadata key of the agent id (sshforward.KeySSHID) */
export const KEY_SSH_ID = 'buildkit.ssh.id';

export function sessionSshAgents(session: Session): SshAgents {
  return {
    async check(id, signal) {
      // BuildKit: UNIMPLEMENTED (no SSH service, the docker CLI without --ssh) is worded for people
      const none = `no SSH key ${JSON.stringify(id)} forwarded from the client`;
      if (!session.supports(CHECK_AGENT.path)) return none;
      try {
        await session.grpc.unary(CHECK_AGENT, { ID: id }, signal);
        return null;
      } catch (e) {
        if (signal.aborted) throw e;
        if (e instanceof GrpcError && e.code === GRPC.UNIMPLEMENTED) return none;
        return (e as Error).message.replace(`${CHECK_AGENT.path}: `, '');
      }
    },
    forward(id, conn, signal) {
      relay(session, id, conn, signal);
    },
  };
}

function relay(session: Session, id: string, conn: Duplex, signal: AbortSignal): void {
  const ac = new AbortController();
  const stop = () => ac.abort();
  signal.addEventListener('abort', stop, { once: true });
  conn.once('close', () => {
    signal.removeEventListener('abort', stop);
    stop();
  });
  let call: ReturnType<typeof session.grpc.bidi<{ data: Buffer }, { data: Buffer }>>;
  try {
    call = session.grpc.bidi(FORWARD_AGENT, ac.signal, { [KEY_SSH_ID]: id });
  } catch {
    conn.destroy();
    return;
  }
  conn.on('data', (data: Buffer) => {
    conn.pause();
    call.send({ data }).then(
      () => conn.resume(),
      () => conn.destroy(),
    );
  });
  conn.on('end', () => call.end());
  void (async () => {
    for await (const m of call.messages) {
      const data = Buffer.from(m.data ?? []);
      if (data.length && !conn.write(data))
        await new Promise<void>((r) => {
          conn.once('drain', () => r());
          conn.once('close', () => r());
        });
    }
    conn.end();
  })().catch(() => conn.destroy());
}
