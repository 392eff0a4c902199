/** `/v2/<name>/blobs/<digest>`: GET/HEAD with ranges (end-2), DELETE (end-10). */
import { isDigestLike } from '../../spec/distribution.js';
import { fault } from '../errors.js';
import { COMMON, send, type Ctx } from '../http.js';
import type { RouteDeps } from './deps.js';

export async function getBlob(d: RouteDeps, c: Ctx, head: boolean): Promise<void> {
  if (!isDigestLike(c.ref)) throw fault('DIGEST_INVALID', `invalid digest: ${c.ref}`);
  const size = d.storage.blobInRepo(c.name, c.ref);
  if (size === null) throw fault('BLOB_UNKNOWN', `blob unknown to registry: ${c.ref}`);
  d.storage.touchBlob(c.ref); // a client that finds a blob may now push a manifest naming it (gc's grace period)
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': c.ref,
    'Accept-Ranges': 'bytes',
    ETag: `"${c.ref}"`,
  };
  const range = /^bytes=(\d*)-(\d*)$/.exec(c.req.headers.range ?? '');
  if (c.req.headers.range && !range) throw fault('RANGE_INVALID', `invalid range ${c.req.headers.range}`);
  let start = 0;
  let end = size - 1;
  if (range) {
    if (range[1] === '' && range[2] !== '') start = Math.max(0, size - Number(range[2]));
    else {
      start = Number(range[1]);
      if (range[2] !== '') end = Math.min(Number(range[2]), size - 1);
    }
    if (start > end || start >= size) {
      // not an error of the request's form: the spec's answer to a range past the end
      c.res.writeHead(416, { ...COMMON, 'Content-Range': `bytes */${size}`, 'Content-Length': 0 });
      return void c.res.end();
    }
    headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
  }
  headers['Content-Length'] = end - start + 1;
  c.res.writeHead(range ? 206 : 200, { ...COMMON, ...headers });
  if (head || size === 0) return void c.res.end();
  d.storage.sendBlob(c.res, c.ref, start, end);
}

export async function deleteBlob(d: RouteDeps, c: Ctx): Promise<void> {
  if (!d.deleteEnabled) throw fault('DELETE_DISABLED', 'deletes are disabled on this registry');
  if (!isDigestLike(c.ref)) throw fault('DIGEST_INVALID', `invalid digest: ${c.ref}`);
  if (!(await d.storage.unlinkBlob(c.name, c.ref))) throw fault('BLOB_UNKNOWN', `blob unknown to registry: ${c.ref}`);
  send(c.res, 202, { 'Docker-Content-Digest': c.ref });
}
