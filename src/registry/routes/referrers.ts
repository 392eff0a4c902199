/** `GET /v2/<name>/referrers/<digest>` (end-12a/b): the manifests whose subject is a digest. */
import { isSha256, MT } from '../../spec/distribution.js';
import { fault } from '../errors.js';
import { send, type Ctx } from '../http.js';
import type { RouteDeps } from './deps.js';

export async function referrers(d: RouteDeps, c: Ctx): Promise<void> {
  if (!isSha256(c.ref)) throw fault('DIGEST_INVALID', `invalid digest: ${c.ref}`);
  const type = c.query.get('artifactType');
  let list = await d.storage.referrers(c.name, c.ref);
  if (type) list = list.filter((x) => x['artifactType'] === type);
  const body = JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: list });
  send(c.res, 200, { 'Content-Type': MT.ociIndex, ...(type ? { 'OCI-Filters-Applied': 'artifactType' } : {}) }, body);
}
