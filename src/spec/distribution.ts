/**
 * OCI Distribution v1.1 wire types: repository names, tags, media types, manifests and indexes
 * parsed from bytes, and the spec's error codes. Shared by the registry server and the engine's
 * registry client.
 */
import { isObject } from '../base/json.js';

/** The spec's error codes (distribution-spec, "Error Codes"): a closed set. */
export const REGISTRY_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
] as const;
export type RegistryErrorCode = (typeof REGISTRY_ERROR_CODES)[number];
export const isRegistryErrorCode = (s: string): s is RegistryErrorCode =>
  (REGISTRY_ERROR_CODES as readonly string[]).includes(s);

/**
 * What the wire types refuse, in the spec's words: a code of the closed set and a message, no
 * HTTP status (the registry's http.ts and the engine's client map codes and statuses).
 */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export const MANIFEST_TYPES: readonly string[] = [MT.ociManifest, MT.ociIndex, MT.dockerManifest, MT.dockerList];
export const INDEX_TYPES: readonly string[] = [MT.ociIndex, MT.dockerList];
/** Manifests larger than this are refused (the spec asks registries to take at least 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

// distribution-spec: <name> = [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/**
 * A digest of a registered algorithm with its exact encoding (image-spec "Digests": sha256 is 64
 * and sha512 128 lowercase hex). The grammar alone (`a:b`) is not enough: digests name files.
 */
const DIGEST_RE = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

/**
 * The registry host a reference names, or null for Docker Hub: Docker's rule is that a first
 * path component with a dot or a port, or `localhost`, is a host.
 */
export function registryHostOf(name: string): string | null {
  const slash = name.indexOf('/');
  if (slash < 0) return null;
  const first = name.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : null;
}

export const isRepoName = (s: string): boolean => s.length <= 255 && NAME_RE.test(s);
export const isTag = (s: string): boolean => TAG_RE.test(s);
/** A digest of a registered algorithm (sha256, sha512) with a valid encoding; only sha256 is supported for content. */
export const isDigestLike = (s: string): boolean => DIGEST_RE.test(s);
export const isSha256 = (s: string): boolean => SHA256_RE.test(s);

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface Manifest {
  mediaType: string;
  /** image manifests */
  config?: Descriptor;
  layers?: Descriptor[];
  /** indexes */
  manifests?: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function descriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new RegistryError('MANIFEST_INVALID', `${what}: not a descriptor`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || !mediaType)
    throw new RegistryError('MANIFEST_INVALID', `${what}: mediaType missing`);
  if (typeof digest !== 'string' || !isDigestLike(digest))
    throw new RegistryError('MANIFEST_INVALID', `${what}: invalid digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw new RegistryError('MANIFEST_INVALID', `${what}: invalid size`);
  return v as unknown as Descriptor;
}

/**
 * Parses manifest bytes. `contentType` (the request's Content-Type) wins over the body's
 * mediaType when they disagree only in absence; a contradiction is invalid.
 */
export function parseManifest(bytes: Buffer, contentType?: string): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError('MANIFEST_INVALID', 'manifest is not valid JSON');
  }
  if (!isObject(v)) throw new RegistryError('MANIFEST_INVALID', 'manifest is not a JSON object');
  const ct = contentType?.split(';')[0]?.trim();
  const bodyType = typeof v['mediaType'] === 'string' ? v['mediaType'] : undefined;
  if (v['schemaVersion'] === 1) throw new RegistryError('UNSUPPORTED', 'Docker schema 1 manifests are not supported');
  if (v['schemaVersion'] !== 2) throw new RegistryError('MANIFEST_INVALID', 'schemaVersion must be 2');
  const mediaType =
    bodyType ?? (ct && MANIFEST_TYPES.includes(ct) ? ct : Array.isArray(v['manifests']) ? MT.ociIndex : MT.ociManifest);
  if (bodyType && ct && MANIFEST_TYPES.includes(ct) && ct !== bodyType)
    throw new RegistryError('MANIFEST_INVALID', `Content-Type ${ct} contradicts the manifest's mediaType ${bodyType}`);
  if (!MANIFEST_TYPES.includes(mediaType))
    throw new RegistryError('MANIFEST_INVALID', `unsupported manifest media type ${mediaType}`);
  const m: Manifest = { mediaType };
  if (INDEX_TYPES.includes(mediaType)) {
    if (!Array.isArray(v['manifests'])) throw new RegistryError('MANIFEST_INVALID', 'index without manifests');
    m.manifests = v['manifests'].map((d, i) => descriptor(d, `manifests[${i}]`));
  } else {
    m.config = descriptor(v['config'], 'config');
    if (!Array.isArray(v['layers'])) throw new RegistryError('MANIFEST_INVALID', 'manifest without layers');
    m.layers = v['layers'].map((d, i) => descriptor(d, `layers[${i}]`));
  }
  if (v['subject'] !== undefined) {
    m.subject = descriptor(v['subject'], 'subject');
    // referrers are kept by the subject's sha256 (the only algorithm this registry stores)
    if (!isSha256(m.subject.digest))
      throw new RegistryError('DIGEST_INVALID', `subject: unsupported digest ${m.subject.digest} (sha256 only)`);
  }
  if (typeof v['artifactType'] === 'string') m.artifactType = v['artifactType'];
  if (isObject(v['annotations'])) m.annotations = v['annotations'] as Record<string, string>;
  return m;
}

/** The artifact type a referrers list shows for a manifest (spec: artifactType, else the config's media type). */
export function artifactTypeOf(m: Manifest): string | undefined {
  return m.artifactType ?? m.config?.mediaType;
}
