/** `GET /v2/_catalog`: the repositories the caller may pull, paged. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { paginate, sendJson } from '../http.js';
import type { RouteDeps } from './deps.js';

export async function catalog(
  d: RouteDeps,
  req: IncomingMessage,
  res: ServerResponse,
  q: URLSearchParams,
  base: string,
): Promise<void> {
  const user = d.auth.check(req, null, [], base);
  const visible = (await d.storage.repositories()).filter((r) => d.auth.granted(user, r).includes('pull'));
  const { page, link } = paginate(visible, q, '/v2/_catalog');
  sendJson(res, 200, { repositories: page }, link ? { Link: link } : {});
}
