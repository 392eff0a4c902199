/** `/v2/<name>/manifests/<reference>`: GET/HEAD (end-3), PUT (end-7), DELETE (end-9). */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { errorMessage } from '../../base/errors.js';
import { log } from '../../base/log.js';
import {
  artifactTypeOf,
  INDEX_TYPES,
  isDigestLike,
  isSha256,
  isTag,
  MAX_MANIFEST_BYTES,
  MT,
  parseManifest,
  type Descriptor,
} from '../../spec/distribution.js';
import { TRUST_TAG } from '../../spec/trust.js';
import { fault } from '../errors.js';
import { readBody, send, type Ctx } from '../http.js';
import type { RouteDeps } from './deps.js';

const byTag = (ref: string) => isTag(ref) && !ref.includes(':');
/** Foreign layers and layers with URLs are not distributable: the registry holds no blob for them. */
const distributable = (x: Descriptor) => x.mediaType !== MT.dockerForeignLayer && !(x as { urls?: unknown }).urls;

/**
 * The digest a GET/HEAD names. A repository the registry does not know is NAME_UNKNOWN; a
 * reference that is neither a tag nor a digest names no manifest: MANIFEST_UNKNOWN (404, as the
 * distribution spec's conformance suite expects of a GET of an invalid reference), never a 400.
 */
async function resolveRef(d: RouteDeps, name: string, ref: string): Promise<string> {
  if (!d.storage.repoExists(name)) throw fault('NAME_UNKNOWN', `repository name not known to registry: ${name}`);
  if (byTag(ref)) {
    const digest = await d.storage.tag(name, ref);
    if (!digest) throw fault('MANIFEST_UNKNOWN', `manifest unknown: ${name}:${ref}`);
    return digest;
  }
  if (!isDigestLike(ref)) throw fault('MANIFEST_UNKNOWN', `manifest unknown: invalid reference ${ref}`);
  return ref;
}

export async function getManifest(d: RouteDeps, c: Ctx, head: boolean): Promise<void> {
  const digest = await resolveRef(d, c.name, c.ref);
  const type = await d.storage.manifestType(c.name, digest);
  const size = type === null ? null : d.storage.blobSize(digest);
  if (type === null || size === null) throw fault('MANIFEST_UNKNOWN', `manifest unknown: ${c.name}@${digest}`);
  const body = readFileSync(d.storage.blobPath(digest));
  const headers = {
    'Content-Type': type,
    'Docker-Content-Digest': digest,
    ETag: `"${digest}"`,
    'Content-Length': size,
  };
  send(c.res, 200, headers, body, head);
}

export async function putManifest(d: RouteDeps, c: Ctx): Promise<void> {
  const byDigest = !byTag(c.ref);
  if (byDigest && !isDigestLike(c.ref)) throw fault('MANIFEST_INVALID', `invalid reference: ${c.ref}`);
  const bytes = await readBody(c.req, MAX_MANIFEST_BYTES);
  const m = parseManifest(bytes, c.req.headers['content-type']);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (byDigest && c.ref !== digest) throw fault('DIGEST_INVALID', `manifest digest ${digest} does not match ${c.ref}`);
  const isIndex = INDEX_TYPES.includes(m.mediaType);
  const blobs = isIndex ? [] : [m.config!, ...(m.layers ?? [])].filter(distributable);
  // every blob and child manifest it names must already be in this repository
  const missing: string[] = [];
  if (isIndex) {
    for (const x of m.manifests ?? [])
      if ((await d.storage.manifestType(c.name, x.digest)) === null) missing.push(x.digest);
  } else {
    for (const x of blobs) {
      const size = d.storage.blobInRepo(c.name, x.digest);
      d.storage.touchBlob(x.digest);
      if (size === null) missing.push(x.digest);
      else if (size !== x.size)
        throw fault('MANIFEST_INVALID', `blob ${x.digest} is ${size} bytes, the manifest says ${x.size}`);
    }
  }
  if (missing.length)
    throw fault('MANIFEST_BLOB_UNKNOWN', `blob unknown to registry: ${missing[0]}`, { digests: missing });
  // Everything is checked above; the writes go from the least to the most visible, so a push
  // that fails part way leaves no tag and no manifest link (only an unlinked blob, which gc takes):
  // blob, then its referrers entry, then the repository's manifest link, then the tag.
  await d.storage.putBlobBytes(bytes);
  const headers: Record<string, string> = {
    Location: `/v2/${c.name}/manifests/${digest}`,
    'Docker-Content-Digest': digest,
  };
  if (m.subject) {
    const at = artifactTypeOf(m);
    const descriptor = {
      mediaType: m.mediaType,
      digest,
      size: bytes.length,
      ...(at ? { artifactType: at } : {}),
      ...(m.annotations ? { annotations: m.annotations } : {}),
    };
    await d.storage.addReferrer(c.name, m.subject.digest, digest, descriptor);
    headers['OCI-Subject'] = m.subject.digest;
  }
  await d.storage.putManifest(c.name, digest, m.mediaType);
  // a gc that swept between the check above and this write: the manifest must not stay
  const gone = blobs.filter((x) => d.storage.blobInRepo(c.name, x.digest) === null);
  if (gone.length) {
    await d.storage.deleteManifest(c.name, digest);
    throw fault('MANIFEST_BLOB_UNKNOWN', `blob unknown to registry: ${gone[0]!.digest}`, {
      digests: gone.map((x) => x.digest),
    });
  }
  if (!byDigest) await d.storage.setTag(c.name, c.ref, digest);
  // trust data pushed: a fresh timestamp over it, when this registry keeps the key (a failure
  // leaves the push as it is: clients then see the old timestamp, and refuse what it does not cover)
  if (c.ref === TRUST_TAG) {
    await d.timestamper?.refresh(c.name, d.storage).catch((e: unknown) => {
      log.warn('timestamping failed', { repo: c.name, err: errorMessage(e) });
    });
  }
  send(c.res, 201, headers);
}

export async function deleteManifest(d: RouteDeps, c: Ctx): Promise<void> {
  if (!d.deleteEnabled) throw fault('DELETE_DISABLED', 'deletes are disabled on this registry');
  if (byTag(c.ref)) {
    if (!(await d.storage.deleteTag(c.name, c.ref)))
      throw fault('MANIFEST_UNKNOWN', `manifest unknown: ${c.name}:${c.ref}`);
    return send(c.res, 202);
  }
  if (!isSha256(c.ref)) throw fault('DIGEST_INVALID', `invalid digest: ${c.ref}`);
  if (!(await d.storage.deleteManifest(c.name, c.ref)))
    throw fault('MANIFEST_UNKNOWN', `manifest unknown: ${c.name}@${c.ref}`);
  send(c.res, 202);
}
