/**
 * The client side of a BuildKit build as the docker CLI drives it, shared by the buildkit*.test.ts
 * files: the session (`POST /session` upgraded to h2c, a grpc-js server on the hijacked socket
 * serving what the client offers), `POST /build?version=2`, and its JSON stream read back.
 */
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import * as grpc from '@grpc/grpc-js';
import { decodeStatus, type StatusResponse } from '../../src/buildkit/protos.js';

/** One JSON message of a build's stream. */
export interface Line {
  id?: string;
  aux?: unknown;
  error?: string;
  stream?: string;
}

/** Reads a build's JSON stream to its end. */
export async function readLines(stream: NodeJS.ReadableStream): Promise<Line[]> {
  let text = '';
  for await (const c of stream) text += c.toString();
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Line);
}

/** The BuildKit statuses carried in a stream's `moby.buildkit.trace` messages. */
export const statusesOf = (lines: Line[]): StatusResponse[] =>
  lines.filter((l) => l.id === 'moby.buildkit.trace').map((l) => decodeStatus(Buffer.from(String(l.aux), 'base64')));

/** The text of the RUN steps' output in those statuses. */
export const logTextOf = (ss: StatusResponse[]): string =>
  ss
    .flatMap((s) => s.logs)
    .map((l) => Buffer.from(l.msg).toString())
    .join('');

export interface SessionServer {
  /** The grpc-js server on the hijacked socket: add the services the session offers to it. */
  server: grpc.Server;
  close(): void;
}

/**
 * Opens a session as the docker CLI does. `methods` are listed in X-Docker-Expose-Session-Grpc-Method
 * (null leaves the header out); `statusCodes` are the answers the dial accepts.
 */
export async function openSessionServer(
  docker: Docker,
  opts: { id: string; name: string; methods: string[] | null; statusCodes?: Record<number, boolean> },
): Promise<SessionServer> {
  const socket = await new Promise<Duplex>((res, rej) =>
    docker.modem.dial(
      {
        method: 'POST',
        path: '/session',
        hijack: true,
        headers: {
          Upgrade: 'h2c',
          'X-Docker-Expose-Session-Uuid': opts.id,
          'X-Docker-Expose-Session-Name': opts.name,
          'X-Docker-Expose-Session-Sharedkey': 'k',
          ...(opts.methods ? { 'X-Docker-Expose-Session-Grpc-Method': opts.methods } : {}),
        },
        statusCodes: opts.statusCodes ?? { 101: true },
      },
      (err: unknown, s: unknown) => (err ? rej(err) : res(s as Duplex)),
    ),
  );
  const server = new grpc.Server();
  server.createConnectionInjector(grpc.ServerCredentials.createInsecure()).injectConnection(socket);
  return {
    server,
    close: () => {
      server.forceShutdown();
      socket.destroy();
    },
  };
}

/**
 * `POST /build?version=2&<options>` with a tar of `files` in `ctx` as the body (no body when ctx
 * is null), as dockerode's modem sends it; resolves to the response stream.
 */
export function postBuild(
  docker: Docker,
  ctx: string | null,
  options: Record<string, string>,
  files: string[] = ['.'],
): Promise<NodeJS.ReadableStream> {
  const body = ctx
    ? spawn('tar', ['-C', ctx, '-c', ...files], { stdio: ['ignore', 'pipe', 'inherit'] }).stdout
    : undefined;
  return new Promise<NodeJS.ReadableStream>((res, rej) =>
    docker.modem.dial(
      {
        path: '/build?',
        method: 'POST',
        options: { version: '2', ...options },
        ...(body ? { file: body } : {}),
        isStream: true,
        statusCodes: { 200: true, 400: 'bad request', 500: 'server error', 503: 'unavailable' },
      },
      (err: unknown, s: unknown) => (err ? rej(err) : res(s as NodeJS.ReadableStream)),
    ),
  );
}
