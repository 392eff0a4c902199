/**
 * RUN --mount=type=ssh: a unix socket the RUN's container sees at the mount's target, each
 * connection on it relayed to the client's SSH agent (BuildKit's sshforward.MountSSHSocket). The
 * socket lives in a private directory of the builder's scratch space (0700, root's), is chmod'ed and
 * chown'ed as the mount says (default 0600, 0:0), and is removed with its directory after the RUN.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { invalidArgument, unavailable } from '../base/errors.js';
import type { SshAgents } from './types.js';

/** sun_path is 108 bytes with its NUL */
const MAX_SOCKET_PATH = 107;

export interface SshSocket {
  /** the socket's host path, bind-mounted into the RUN */
  path: string;
  /** stops listening, ends the open connections, removes the socket and its directory */
  close(): Promise<void>;
}

/** The options of one `--mount=type=ssh` (BuildKit's dockerfile frontend: id, mode, uid, gid). */
export function sshOptions(m: Record<string, string>): { id: string; mode: number; uid: number; gid: number } {
  const num = (k: string, radix: number, dflt: number): number => {
    const v = m[k];
    if (v === undefined || v === '') return dflt;
    const n = parseInt(v, radix);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n > 0xffffffff)
      throw invalidArgument(`invalid ${k} for --mount=type=ssh: ${v}`);
    return n;
  };
  const mode = num('mode', 8, 0o600);
  if (mode > 0o7777) throw invalidArgument(`invalid mode for --mount=type=ssh: ${m['mode']}`);
  return { id: m['id'] || 'default', mode, uid: num('uid', 10, 0), gid: num('gid', 10, 0) };
}

/** Opens the socket for agent `id`; the caller closes it when the RUN is over, whatever happened. */
export async function openSshSocket(
  scratch: string,
  agents: SshAgents,
  opt: { id: string; mode: number; uid: number; gid: number },
  signal: AbortSignal,
): Promise<SshSocket> {
  const dir = join(scratch, `ssh-${randomBytes(8).toString('hex')}`);
  const path = join(dir, 'agent.sock');
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH)
    throw unavailable(`RUN --mount=type=ssh: the socket path ${path} is too long for a unix socket`);
  await fsp.mkdir(dir, { mode: 0o700 });
  const conns = new Set<net.Socket>();
  // allowHalfOpen: a client that shuts its write side down still reads the agent's answer
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => undefined);
    agents.forward(opt.id, c, signal);
  });
  server.on('error', () => undefined);
  const close = async () => {
    await new Promise<void>((r) => {
      server.close(() => r());
      for (const c of conns) c.destroy();
    });
    await fsp.rm(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await fsp.chmod(path, opt.mode);
    await fsp.chown(path, opt.uid, opt.gid);
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
  return { path, close };
}
