/**
 * What pull, push and the trust commands share: the registry a reference names, the credentials
 * stored for it (../credentials.ts) and their X-Registry-Auth header, and the rendering of Docker's
 * JSON progress stream. Kept apart from commands/registry.ts so that the trust bundle
 * (commands/trust.ts) does not import the module that loads it (trust-loader.ts).
 */
import { registryHostOf } from '../spec/distribution.js';
import { jsonMessages } from './io.js';
import { ExitError, type Ctx } from './context.js';
import { loadCredentials } from './credentials.js';

/** The registry host of a reference, as the docker CLI keys credentials (`docker.io` -> index URL). */
export function registryOf(ref: string): string {
  return registryHostOf(ref) ?? 'https://index.docker.io/v1/';
}

/** The credentials stored for a registry (`docker login`/`berth login`), if any: from its credential helper or config.json. */
export function credentialsFor(server: string): { username: string; password: string } | null {
  const c = loadCredentials(server);
  return c && !c.identityToken ? { username: c.username, password: c.password } : null;
}

export function authHeader(server: string): Record<string, string> {
  const c = loadCredentials(server);
  if (!c) return {};
  const json = JSON.stringify(
    c.identityToken
      ? { identitytoken: c.identityToken, serveraddress: server }
      : { username: c.username, password: c.password, serveraddress: server },
  );
  return { 'X-Registry-Auth': Buffer.from(json).toString('base64url') };
}

/** Renders Docker's JSON progress stream; throws on an error message. */
export async function render(
  ctx: Ctx,
  res: NodeJS.ReadableStream,
  quiet: boolean,
  onAux?: (aux: Record<string, unknown>) => void,
): Promise<void> {
  const tty = process.stdout.isTTY && !quiet;
  const order: string[] = [];
  const lines = new Map<string, string>();
  let drawn = 0;
  const redraw = () => {
    if (drawn) ctx.out(`\x1b[${drawn}A`);
    for (const id of order) ctx.out(`\x1b[2K${id}: ${lines.get(id)}\n`);
    drawn = order.length;
  };
  let error: string | null = null;
  for await (const m of jsonMessages(res)) {
    if (typeof m['error'] === 'string') {
      error = m['error'];
      break;
    }
    if (m['aux'] && typeof m['aux'] === 'object') onAux?.(m['aux'] as Record<string, unknown>);
    if (quiet || typeof m['status'] !== 'string') continue;
    const id = typeof m['id'] === 'string' ? m['id'] : '';
    const text = `${m['status']}${typeof m['progress'] === 'string' && tty ? ` ${m['progress']}` : ''}`;
    if (!id) {
      ctx.out(`${m['status']}\n`);
      drawn = 0;
      order.length = 0;
      continue;
    }
    if (!tty) {
      if (m['status'] !== 'Downloading' && m['status'] !== 'Pushing') ctx.out(`${id}: ${text}\n`);
      continue;
    }
    if (!lines.has(id)) order.push(id);
    lines.set(id, text);
    redraw();
  }
  if (error) throw new ExitError(1, error);
}
