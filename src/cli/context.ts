/** What every command gets: the API client, output helpers, and the exit-code contract. */
import { Client, ApiError, socketFromHost } from '../client/client.js';
import { write } from './stdio.js';

export interface Ctx {
  client: Client;
  out(s: string): void;
  err(s: string): void;
}

/** An error that ends the CLI with a specific exit code (run's container code, 125, 126, 127). */
export class ExitError extends Error {
  constructor(
    readonly code: number,
    message = '',
  ) {
    super(message);
  }
}

export function makeCtx(host: string | undefined): Ctx {
  const h = host ?? process.env['BERTH_HOST'] ?? process.env['DOCKER_HOST'] ?? 'unix:///run/berth/berth.sock';
  return {
    client: new Client(socketFromHost(h)),
    out: (s) => write('stdout', s),
    err: (s) => write('stderr', s),
  };
}

export function daemonError(e: unknown): string {
  return e instanceof ApiError
    ? `Error response from daemon: ${e.message}`
    : e instanceof Error
      ? e.message
      : String(e);
}

export const q = (params: Record<string, string | number | boolean | undefined>): string => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== false) u.set(k, v === true ? '1' : String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
};
