/**
 * `/v2/<name>/blobs/uploads/`: POST (end-4a/b, end-11 mount), PATCH (end-5), PUT (end-6), GET
 * (status), DELETE (cancel). A blob exists only after its digest matched (storage.ts).
 */
import type { IncomingMessage } from 'node:http';
import { isDigestLike, isRepoName, isSha256 } from '../../spec/distribution.js';
import { fault } from '../errors.js';
import { send, type Ctx } from '../http.js';
import type { RouteDeps } from './deps.js';

function uploadHeaders(name: string, uuid: string, size: number): Record<string, string> {
  return {
    Location: `/v2/${name}/blobs/uploads/${uuid}`,
    'Docker-Upload-UUID': uuid,
    Range: `0-${Math.max(0, size - 1)}`,
  };
}

function contentLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  return v === undefined ? undefined : Number(v);
}

export async function startUpload(d: RouteDeps, c: Ctx): Promise<void> {
  const mount = c.query.get('mount');
  const from = c.query.get('from');
  if (mount && from) {
    // cross-repository mount: only from a repository the client may pull; else a normal upload
    const held = isSha256(mount) && isRepoName(from) && d.storage.blobInRepo(from, mount) !== null;
    if (held && d.auth.allows(c.req, from, ['pull'])) {
      await d.storage.linkBlob(c.name, mount);
      c.req.resume();
      return send(c.res, 201, { Location: `/v2/${c.name}/blobs/${mount}`, 'Docker-Content-Digest': mount });
    }
  }
  const digest = c.query.get('digest');
  const u = await d.storage.startUpload(c.name);
  if (digest) {
    // monolithic: the whole blob in this request
    try {
      if (!isDigestLike(digest)) throw fault('DIGEST_INVALID', `invalid digest: ${digest}`);
      await d.storage.append(u, c.req, contentLength(c.req));
      await d.storage.finishUpload(u, digest);
    } catch (e) {
      await d.storage.cancelUpload(u.uuid);
      throw e;
    }
    return send(c.res, 201, { Location: `/v2/${c.name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
  }
  c.req.resume();
  send(c.res, 202, uploadHeaders(c.name, u.uuid, 0));
}

export async function patchUpload(d: RouteDeps, c: Ctx): Promise<void> {
  const u = await d.storage.upload(c.name, c.ref);
  const cr = c.req.headers['content-range'];
  if (cr !== undefined) {
    const m = /^(?:bytes )?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(cr);
    if (!m || Number(m[1]) !== u.size) {
      // the spec's answer to an out-of-order chunk: 416 with where the upload is (Range), so the client resumes
      c.req.resume();
      const message = `chunk starts at ${m?.[1] ?? '?'}, the upload is at ${u.size}`;
      const body = JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message }] });
      return send(c.res, 416, uploadHeaders(c.name, u.uuid, u.size), body);
    }
  }
  const size = await d.storage.append(u, c.req, contentLength(c.req));
  send(c.res, 202, uploadHeaders(c.name, u.uuid, size));
}

export async function putUpload(d: RouteDeps, c: Ctx): Promise<void> {
  const u = await d.storage.upload(c.name, c.ref);
  const digest = c.query.get('digest');
  if (!digest || !isDigestLike(digest)) {
    c.req.resume();
    throw fault('DIGEST_INVALID', `a digest is required to finish an upload`);
  }
  const len = contentLength(c.req);
  if (len !== 0) await d.storage.append(u, c.req, len);
  else c.req.resume();
  await d.storage.finishUpload(u, digest);
  send(c.res, 201, { Location: `/v2/${c.name}/blobs/${digest}`, 'Docker-Content-Digest': digest });
}

export async function uploadStatus(d: RouteDeps, c: Ctx): Promise<void> {
  const u = await d.storage.upload(c.name, c.ref);
  send(c.res, 204, uploadHeaders(c.name, u.uuid, u.size));
}

export async function cancelUpload(d: RouteDeps, c: Ctx): Promise<void> {
  const u = await d.storage.upload(c.name, c.ref);
  await d.storage.cancelUpload(u.uuid);
  send(c.res, 204);
}
