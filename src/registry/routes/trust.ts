/**
 * A repository's trust data as a plain TUF repository (`/trust/v1/<name>/metadata/<file>`), for
 * TUF clients that fetch files by URL (tuf-js's Updater, python-tuf): the files of the `_trust`
 * artifact. The registry vouches for nothing here; the files are signed. And
 * `/trust/v1/_timestamp-key`: the key of a registry that signs timestamps.
 */
import type { ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { TRUST_TAG, trustFiles } from '../../spec/trust.js';
import { fault } from '../errors.js';
import { send, sendJson, type Ctx } from '../http.js';
import type { RouteDeps } from './deps.js';

export async function trustFile(d: RouteDeps, c: Ctx): Promise<void> {
  const digest = await d.storage.tag(c.name, TRUST_TAG);
  const files = digest ? trustFiles(JSON.parse(readFileSync(d.storage.blobPath(digest), 'utf8'))) : null;
  const f = files?.get(c.ref);
  if (!f || d.storage.blobSize(f.digest) === null)
    throw fault('NAME_UNKNOWN', `no trust metadata ${c.ref} for ${c.name}`);
  send(
    c.res,
    200,
    { 'Content-Type': 'application/json', 'Content-Length': f.size },
    readFileSync(d.storage.blobPath(f.digest)),
  );
}

export function timestampKey(d: RouteDeps, res: ServerResponse): void {
  if (!d.timestamper) throw fault('NOT_SERVED', 'this registry does not sign timestamps');
  sendJson(res, 200, d.timestamper.key());
}
