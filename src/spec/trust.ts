/**
 * The wire form of berth's trust data in a registry (see src/trust/README.md): an OCI artifact
 * tagged `_trust` in the image's repository, one layer per TUF metadata file, each named by its
 * `org.opencontainers.image.title` annotation.
 */
import { isObject } from '../base/json.js';

export const TRUST_TAG = '_trust';
export const TRUST_ARTIFACT_TYPE = 'application/vnd.berth.trust.tuf.v1';
export const TRUST_FILE_TYPE = 'application/vnd.berth.trust.tuf.metadata.v1+json';
export const TITLE_ANNOTATION = 'org.opencontainers.image.title';
/** TUF metadata file names: `root.json`, `3.root.json`, `timestamp.json`, `releases.json`, ... */
export const TRUST_FILE_NAME = /^[a-z0-9][a-z0-9.-]*\.json$/;

/** A trust artifact's files (name -> blob digest and size), from its manifest; null when it is not one. */
export function trustFiles(manifest: unknown): Map<string, { digest: string; size: number }> | null {
  if (!isObject(manifest) || manifest['artifactType'] !== TRUST_ARTIFACT_TYPE || !Array.isArray(manifest['layers']))
    return null;
  const files = new Map<string, { digest: string; size: number }>();
  for (const l of manifest['layers']) {
    if (!isObject(l) || !isObject(l['annotations'])) continue;
    const title = l['annotations'][TITLE_ANNOTATION];
    if (typeof title === 'string' && TRUST_FILE_NAME.test(title))
      files.set(title, { digest: String(l['digest']), size: Number(l['size']) });
  }
  return files;
}
