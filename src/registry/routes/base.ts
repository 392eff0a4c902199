/** `GET /v2/` (end-1): the version check; how clients learn to send credentials. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../http.js';
import type { RouteDeps } from './deps.js';

export function versionCheck(d: RouteDeps, req: IncomingMessage, res: ServerResponse, base: string): void {
  d.auth.check(req, null, [], base);
  sendJson(res, 200, {});
}
