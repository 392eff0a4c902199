/** `GET /v2/<name>/tags/list` (end-8a/b): a repository's tags, paged. */
import { fault } from '../errors.js';
import { paginate, sendJson, type Ctx } from '../http.js';
import type { RouteDeps } from './deps.js';

export async function tagsList(d: RouteDeps, c: Ctx): Promise<void> {
  if (!d.storage.repoExists(c.name)) throw fault('NAME_UNKNOWN', `repository name not known to registry: ${c.name}`);
  const { page, link } = paginate(await d.storage.tags(c.name), c.query, `/v2/${c.name}/tags/list`);
  sendJson(c.res, 200, { name: c.name, tags: page }, link ? { Link: link } : {});
}
