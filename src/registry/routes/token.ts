/** `GET /token`: the Docker token flow's token endpoint (`--auth token`); tokens live 5 minutes. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fault } from '../errors.js';
import { sendJson } from '../http.js';
import type { RouteDeps } from './deps.js';

export function token(d: RouteDeps, req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
  if (d.auth.mode !== 'token') throw fault('NOT_SERVED', 'this registry does not issue tokens');
  const user = d.auth.basicUser(req.headers.authorization); // wrong credentials: 401
  const t = d.auth.issueToken(
    user,
    q
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .filter(Boolean),
  );
  sendJson(res, 200, { token: t, access_token: t, expires_in: 300, issued_at: new Date(d.clock.now()).toISOString() });
}
