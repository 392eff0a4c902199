/**
 * pull: reference -> manifest (an index picks the platform) -> config -> layers fetched in
 * parallel, each verified against its blob digest while it streams and against the config's
 * diff id as it lands in content -> unpacked in parallel -> image record, tag and repo digest.
 * Layers already in content (shared with another image, or finished by an interrupted pull)
 * are not fetched again. Nothing is registered unless every byte verified.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { invalidArgument, notFound } from '../base/errors.js';
import { parseImageConfig } from '../spec/image-parse.js';
import {
  INDEX_TYPES,
  MANIFEST_TYPES,
  MAX_MANIFEST_BYTES,
  parseManifest,
  type Descriptor,
} from '../spec/distribution.js';
import { parseReference, type Reference } from './reference.js';
import {
  endpointOf,
  registryErrorOf,
  RegistryHttpError,
  RegistrySession,
  type ClientOptions,
  type Credentials,
} from './client.js';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches, type Platform } from './platform.js';
import { digestAlgorithm, digestOf, eachLimit, meterReport, shortId, verifier, type Progress } from './transfer.js';
import { fetchBlobToFile, workersAvailable } from './blob-fetch.js';

export type { Progress };

export type { Platform };
export { hostPlatform, parsePlatform };

export const ACCEPT = MANIFEST_TYPES.join(', ');
/** Image configs larger than this are refused (dockerd's own limit is 8 MiB). */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/**
 * A manifest by tag or digest. `name` is the reference's familiar name, for dockerd's words on a
 * 404 (distribution's translatePullError): `repository NAME not found: name unknown: ...` when the
 * registry says NAME_UNKNOWN, else `manifest for NAME:TAG not found: manifest unknown: ...`.
 */
async function fetchManifest(
  s: RegistrySession,
  ref: string,
  name: string,
): Promise<{ bytes: Buffer; type: string; digest: string }> {
  const res = await s.fetch('GET', `/v2/${s.ep.repo}/manifests/${ref}`, { headers: { Accept: ACCEPT } });
  if (res.status === 404) {
    const e = await registryErrorOf(res);
    if (e.code === 'NAME_UNKNOWN') throw notFound(`repository ${name} not found: ${e.text}`);
    const why = e.code === 'MANIFEST_UNKNOWN' ? e.text : `manifest unknown: ${e.text}`;
    throw notFound(`manifest for ${name}${ref.includes(':') ? '@' : ':'}${ref} not found: ${why}`);
  }
  if (!res.ok) throw new RegistryHttpError(res.status, `fetching manifest ${ref}: ${res.status}`);
  const bytes = await readCapped(res, MAX_MANIFEST_BYTES, `manifest ${ref}`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  // a manifest asked for by digest must be that digest, whatever its algorithm
  if (ref.includes(':') && digestOf(ref, bytes) !== ref)
    throw invalidArgument(`manifest ${ref} failed verification: content is ${digestOf(ref, bytes)}`);
  return { bytes, type: res.headers.get('content-type') ?? '', digest };
}

/** A response body of at most `max` bytes (a registry that sends more is cut off, not buffered). */
export async function readCapped(res: Response, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw invalidArgument(`${what} is ${declared} bytes, more than ${max}`);
  }
  const parts: Buffer[] = [];
  let n = 0;
  if (res.body) {
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      n += c.length;
      if (n > max) {
        await res.body.cancel().catch(() => undefined);
        throw invalidArgument(`${what} is more than ${max} bytes`);
      }
      parts.push(Buffer.from(c));
    }
  }
  return Buffer.concat(parts);
}

export async function fetchBlob(s: RegistrySession, d: Descriptor): Promise<Readable> {
  const res = await s.getStream(`/v2/${s.ep.repo}/blobs/${d.digest}`);
  if (res.statusCode !== 200) {
    res.resume();
    throw new RegistryHttpError(res.statusCode ?? 0, `fetching blob ${d.digest}: ${res.statusCode}`);
  }
  return res;
}

/**
 * A layer blob downloaded by a worker thread (blob-fetch.ts) into `path`: verified against its
 * descriptor there (hashed unless its digest is the diff id's own sha256, which the worker
 * computes anyway), gunzipped when gzip; answers the uncompressed bytes' sha256 and size. A 401
 * is answered once (as getStream does) and the download asked again.
 */
async function fetchLayerOnWorker(
  s: RegistrySession,
  d: Descriptor,
  diffId: string,
  path: string,
  onBytes: (n: number) => void,
): Promise<{ digest: string; size: number }> {
  digestAlgorithm(d.digest); // a malformed or unknown digest is refused before any request
  const blobPath = `/v2/${s.ep.repo}/blobs/${d.digest}`;
  for (let attempt = 0; ; attempt++) {
    const r = await fetchBlobToFile(
      { ...s.requestOf(blobPath), path, digest: d.digest, size: d.size, hashBlob: d.digest !== diffId },
      onBytes,
    );
    if (r.status === 401 && attempt === 0 && r.challenge) {
      await s.answerChallenge(r.challenge);
      continue;
    }
    if (r.status === 401 || r.status === 403)
      throw new RegistryHttpError(r.status, `${r.status === 401 ? 'unauthorized' : 'denied'}: fetching ${blobPath}`);
    if (r.status !== 200) throw new RegistryHttpError(r.status, `fetching blob ${d.digest}: ${r.status}`);
    return { digest: r.diffDigest!, size: r.diffSize! };
  }
}

/**
 * Where a pull lands (the image store composes pull with itself): layers go into content,
 * checked against the config's diff id, and are unpacked; the image is registered at the end.
 * The whole pull runs under `withLease`, so nothing it landed is collected before it registers.
 */
export interface PullTarget<Image> {
  withLease<T>(label: string, work: () => Promise<T>): Promise<T>;
  /** Whether the layer's blob is in content (held by the pull's lease when it is). */
  hasLayer(diffId: string): boolean;
  ingestLayer(input: Readable, expectedDiffId: string): Promise<void>;
  /** The same from a file `fill` writes (a download on a worker); where absent, layers come through `ingestLayer`. */
  ingestLayerFile?(
    fill: (path: string) => Promise<{ digest: string; size: number }>,
    expectedDiffId: string,
  ): Promise<void>;
  unpackLayer(diffIds: readonly string[], i: number): Promise<void>;
  register(configBytes: Buffer, names: { tag?: string; digestRef?: string }): Promise<Image>;
}

/** Content trust's say in a pull: the digest a tag must resolve to (null: the repository is not covered). */
export interface PullGate {
  pin(
    name: string,
    tag: string | undefined,
    digest: string | undefined,
    creds: Credentials | null,
  ): Promise<string | null>;
}

export interface PullOptions {
  creds: Credentials | null;
  platform?: string;
  progress: Progress;
  client?: ClientOptions;
  trust?: PullGate | null;
}

export async function pull<Image>(images: PullTarget<Image>, refText: string, o: PullOptions): Promise<Image> {
  const ref = parseReference(refText); // a bad reference rejects (never throws synchronously), before any lease
  return images.withLease(`pull ${refText}`, () => pullLeased(images, refText, ref, o));
}

async function pullLeased<Image>(
  images: PullTarget<Image>,
  refText: string,
  ref: Reference,
  o: PullOptions,
): Promise<Image> {
  const tag = ref.digest ? undefined : (ref.tag ?? 'latest');
  const ep = endpointOf(ref.name, o.client);
  const s = new RegistrySession(ep, o.creds, `repository:${ep.repo}:pull`);
  // a covered repository: the signed digest, whatever the registry's tag points at now
  const pinned = o.trust ? await o.trust.pin(ref.name, tag, ref.digest, o.creds) : null;
  const want = o.platform ? parsePlatform(o.platform) : hostPlatform(); // a malformed one is a 400 before any request
  let top;
  try {
    top = await fetchManifest(s, pinned ?? ref.digest ?? tag!, ref.name);
  } catch (e) {
    // dockerd's words and status (404, which clients map to ImageNotFound): a 401 would make the
    // docker CLI prompt for a login. dockerd: "pull access denied for X, repository does not exist
    // or may require 'docker login': denied: requested access to the resource is denied"
    if (e instanceof RegistryHttpError && (e.status === 401 || e.status === 403))
      throw notFound(
        `pull access denied for ${ref.name}, repository does not exist or may require 'docker login': ${e.message}`,
        e,
      );
    throw e;
  }
  // the first word to the client comes once the image is known to exist: errors before it are
  // HTTP errors, later ones end the stream (dockerd: a platform a manifest list lacks is an
  // errorDetail after "Pulling from")
  o.progress({ status: `Pulling from ${ep.repo.replace(/^library\//, '')}`, id: tag ?? ref.digest! });
  let manifest = parseManifest(top.bytes, top.type);
  if (INDEX_TYPES.includes(manifest.mediaType)) {
    const pick = manifest.manifests?.find((m) => platformMatches(m.platform, want));
    if (!pick) throw notFound(`no matching manifest for ${formatPlatform(want)} in the manifest list entries`);
    const child = await fetchManifest(s, pick.digest, ref.name);
    manifest = parseManifest(child.bytes, child.type);
    if (INDEX_TYPES.includes(manifest.mediaType)) throw invalidArgument('nested manifest lists are not supported');
  }
  const cfgDesc = manifest.config!;
  if (cfgDesc.size > MAX_CONFIG_BYTES)
    throw invalidArgument(`image config ${cfgDesc.digest} is ${cfgDesc.size} bytes, more than ${MAX_CONFIG_BYTES}`);
  const configRes = await fetchBlob(s, cfgDesc);
  const parts: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const v = verifier(cfgDesc, () => undefined); // fails past the descriptor's size: never buffered beyond it
    configRes
      .pipe(v)
      .on('data', (c: Buffer) => parts.push(c))
      .on('end', resolve)
      .on('error', reject);
    configRes.on('error', (e) => v.destroy(e));
  });
  const configBytes = Buffer.concat(parts);
  const config = parseImageConfig(configBytes);
  if (pinned) o.progress({ status: `Verified: ${tag ? `${tag} is signed as ${pinned}` : `${pinned} is signed`}` });
  const layers = manifest.layers ?? [];
  const diffIds = config.rootfs.diff_ids;
  if (layers.length !== diffIds.length)
    throw invalidArgument(`manifest has ${layers.length} layers, its config ${diffIds.length}`);
  for (const l of layers) o.progress({ status: 'Pulling fs layer', id: shortId(l.digest), progressDetail: {} });
  let fetched = 0;
  const unpacking: Array<Promise<void>> = [];
  const fetchLayer = async (i: number): Promise<void> => {
    const l = layers[i]!;
    const diffId = diffIds[i]!;
    const id = shortId(l.digest);
    if (images.hasLayer(diffId)) {
      o.progress({ status: 'Already exists', id, progressDetail: {} });
    } else {
      const meter = meterReport(o.progress, 'Downloading', id, l.size);
      if (images.ingestLayerFile && workersAvailable()) {
        await images.ingestLayerFile((path) => fetchLayerOnWorker(s, l, diffId, path, meter), diffId);
      } else {
        const body = await fetchBlob(s, l);
        const v = verifier(l, meter, l.digest !== diffId);
        body.on('error', (e) => v.destroy(e));
        await images.ingestLayer(body.pipe(v), diffId);
      }
      fetched++;
      o.progress({ status: 'Download complete', id, progressDetail: {} });
    }
    unpacking.push(images.unpackLayer(diffIds, i)); // while the other layers still download
  };
  try {
    await eachLimit(
      layers.map((_, i) => i),
      4,
      fetchLayer,
    );
  } finally {
    await Promise.allSettled(unpacking);
  }
  await Promise.all(unpacking);
  const img = await images.register(configBytes, {
    ...(tag ? { tag: `${ref.name}:${tag}` } : {}),
    digestRef: `${ref.name}@${top.digest}`,
  });
  for (const l of layers) o.progress({ status: 'Pull complete', id: shortId(l.digest), progressDetail: {} });
  o.progress({ status: `Digest: ${top.digest}` });
  o.progress({
    status: `Status: ${fetched ? 'Downloaded newer image' : 'Image is up to date'} for ${refText.includes('/') || !tag ? refText : `${ref.name}:${tag}`}`,
  });
  return img;
}

/** The tags of a repository (tags/list, following Link pages). */
export async function listTags(
  name: string,
  o: { creds: Credentials | null; client?: ClientOptions },
): Promise<string[]> {
  const ep = endpointOf(name, o.client);
  const s = new RegistrySession(ep, o.creds, `repository:${ep.repo}:pull`);
  const out: string[] = [];
  let path: string | null = `/v2/${ep.repo}/tags/list`;
  while (path) {
    const res = await s.fetch('GET', path);
    if (res.status === 404) throw notFound(`repository ${name} not found`);
    if (!res.ok) throw new RegistryHttpError(res.status, `listing tags of ${name}: ${res.status}`);
    const body = (await res.json()) as { tags?: string[] | null };
    out.push(...(body.tags ?? []));
    const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '');
    path = next ? next[1]! : null;
  }
  return out;
}
