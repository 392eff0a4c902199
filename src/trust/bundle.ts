/**
 * How a repository's TUF metadata travels: as an OCI artifact in the repository itself, so any
 * registry or mirror that copies the repository carries it, and nothing but the publisher's root
 * of trust is needed to check it.
 *
 * The artifact is an OCI image manifest (artifactType `application/vnd.berth.trust.tuf.v1`, the
 * empty config) whose layers are the metadata files, each named by its
 * `org.opencontainers.image.title` annotation, tagged `_trust`. Every signing replaces the tag.
 * The registry is not trusted with any of it: a fetched file is checked against the manifest's
 * digest, and then by TUF (signatures, versions, expiry) in verify.ts.
 */
import { invalidArgument } from '../base/errors.js';
import { sha256 } from '../base/digest.js';
import { hasBlob, putManifest, uploadBlob } from '../distribution/push.js';
import { RegistryHttpError, type RegistrySession } from '../distribution/client.js';
import { MT } from '../spec/distribution.js';
import {
  TITLE_ANNOTATION as TITLE,
  TRUST_ARTIFACT_TYPE as ARTIFACT_TYPE,
  TRUST_FILE_TYPE as FILE_TYPE,
  TRUST_TAG,
  trustFiles,
} from '../spec/trust.js';
const EMPTY = Buffer.from('{}');

export interface BundleIndex {
  /** digest of the artifact's manifest */
  digest: string;
  /** the manifest's bytes (the verified-metadata cache keeps them: cache.ts) */
  manifest: Buffer;
  files: Map<string, { digest: string; size: number }>;
}

/** The artifact's file list, or null when the repository has no trust data. */
export async function fetchIndex(s: RegistrySession): Promise<BundleIndex | null> {
  const res = await s.fetch('GET', `/v2/${s.ep.repo}/manifests/${TRUST_TAG}`, { headers: { Accept: MT.ociManifest } });
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  if (!res.ok)
    throw new RegistryHttpError(res.status, `fetching trust data of ${s.ep.host}/${s.ep.repo}: ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalidArgument(`trust data of ${s.ep.host}/${s.ep.repo} is not a manifest`);
  }
  const files = trustFiles(m);
  if (!files) throw invalidArgument(`the ${TRUST_TAG} tag of ${s.ep.host}/${s.ep.repo} is not berth trust data`);
  return { digest: sha256(bytes), manifest: bytes, files };
}

/** One metadata file, checked against the digest the artifact names. */
export async function fetchFile(
  s: RegistrySession,
  idx: BundleIndex,
  name: string,
  maxLength: number,
): Promise<Buffer | null> {
  const d = idx.files.get(name);
  if (!d) return null;
  if (d.size > maxLength)
    throw invalidArgument(`trust metadata ${name} is ${d.size} bytes, more than the ${maxLength} allowed`);
  const res = await s.fetch('GET', `/v2/${s.ep.repo}/blobs/${d.digest}`);
  if (!res.ok) throw new RegistryHttpError(res.status, `fetching trust metadata ${name}: ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.length > maxLength || sha256(bytes) !== d.digest)
    throw invalidArgument(
      `trust metadata ${name} from the registry does not match its digest ${d.digest}: it was tampered with`,
    );
  return bytes;
}

/** Uploads the files (those the repository lacks) and points `_trust` at a manifest naming them. */
export async function pushBundle(s: RegistrySession, files: Map<string, Buffer>): Promise<string> {
  s.presetBasic();
  await s.authorize();
  const blobs = [EMPTY, ...files.values()];
  for (const b of blobs) {
    const d = sha256(b);
    if (!(await hasBlob(s, d))) await uploadBlob(s, d, b.length, () => b);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      artifactType: ARTIFACT_TYPE,
      config: { mediaType: MT.ociEmpty, digest: sha256(EMPTY), size: EMPTY.length },
      layers: [...files]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, b]) => ({
          mediaType: FILE_TYPE,
          digest: sha256(b),
          size: b.length,
          annotations: { [TITLE]: name },
        })),
    }),
  );
  await putManifest(s, TRUST_TAG, manifest, 'trust data');
  return sha256(manifest);
}
