/**
 * push: image -> layers and config (HEAD first: what the registry has is not sent again) ->
 * an OCI image manifest -> tag. Layers travel as the uncompressed tars the content store keeps
 * (`application/vnd.oci.image.layer.v1.tar`): no recompression on push, and the same image
 * always gives the same manifest digest.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { invalidArgument } from '../base/errors.js';
import { MT } from '../spec/distribution.js';
import { parseReference } from './reference.js';
import { endpointOf, RegistryHttpError, RegistrySession, type ClientOptions, type Credentials } from './client.js';
import { eachLimit, meterReport, shortId, verifier, type Progress } from './transfer.js';

export async function hasBlob(s: RegistrySession, digest: string): Promise<boolean> {
  const res = await s.fetch('HEAD', `/v2/${s.ep.repo}/blobs/${digest}`);
  return res.ok;
}

export async function uploadBlob(
  s: RegistrySession,
  digest: string,
  size: number,
  body: () => Readable | Buffer,
): Promise<void> {
  const start = await s.fetch('POST', `/v2/${s.ep.repo}/blobs/uploads/`, { length: 0, body: Buffer.alloc(0) });
  await start.body?.cancel();
  const loc = start.headers.get('location');
  if (start.status !== 202 || !loc)
    throw new RegistryHttpError(start.status, `starting the upload of ${digest}: ${start.status}`);
  const url = new URL(loc, s.ep.base);
  url.searchParams.set('digest', digest);
  const b = body();
  const put = Buffer.isBuffer(b)
    ? await s
        .fetch('PUT', url.toString(), {
          headers: { 'Content-Type': 'application/octet-stream' },
          body: b,
          length: size,
        })
        .then(async (r) => ({ status: r.status, text: await r.text() }))
    : await s.putStream(url.toString(), b, size);
  if (put.status !== 201)
    throw new RegistryHttpError(put.status, `uploading ${digest}: ${put.status} ${put.text.trim()}`);
}

/** What a push reads (the image store): an image's config and layers, and where its repo digest goes. */
/** PUTs an OCI image manifest as `reference` of the session's repository; 201 or a RegistryHttpError about `what`. */
export async function putManifest(
  s: RegistrySession,
  reference: string,
  manifest: Buffer,
  what: string,
): Promise<void> {
  const put = await s.fetch('PUT', `/v2/${s.ep.repo}/manifests/${reference}`, {
    headers: { 'Content-Type': MT.ociManifest },
    body: manifest,
    length: manifest.length,
  });
  if (put.status !== 201)
    throw new RegistryHttpError(
      put.status,
      `pushing ${what}: ${put.status} ${(await put.text().catch(() => '')).trim()}`,
    );
  await put.body?.cancel();
}

export interface PushSource {
  get(ref: string): { id: string; config: { rootfs: { diff_ids: readonly string[] } } };
  configBytes(id: string): Buffer;
  layerStream(diffId: string): Readable;
  layerSize(diffId: string): number;
  addDigest(digestRef: string, id: string): void;
}

export async function push(
  images: PushSource,
  refText: string,
  o: {
    creds: Credentials | null;
    progress: Progress;
    client?: ClientOptions;
    onDigest?: (digest: string, size: number, tag: string) => void;
  },
): Promise<{ digest: string; size: number }> {
  const ref = parseReference(refText);
  if (ref.digest) throw invalidArgument(`cannot push a digest reference: ${refText}`);
  const tag = ref.tag ?? 'latest';
  const image = images.get(`${ref.name}:${tag}`);
  const ep = endpointOf(ref.name, o.client);
  const s = new RegistrySession(ep, o.creds, `repository:${ep.repo}:pull,push`);
  // like dockerd, the first line goes out before any registry round trip: a refusal then ends the
  // stream (a 401 status would make the docker CLI prompt for a login instead)
  o.progress({
    status: `The push refers to repository [${ref.name.includes('/') && ep.host !== 'docker.io' ? ref.name : `docker.io/${ep.repo}`}]`,
  });
  s.presetBasic(); // a registry that lets anonymous clients in would not ask for them before a streamed upload
  await s.authorize();
  const diffIds = image.config.rootfs.diff_ids;
  const layers = diffIds.map((d) => ({ digest: d, size: images.layerSize(d) }));
  for (const l of [...layers].reverse()) o.progress({ status: 'Preparing', id: shortId(l.digest), progressDetail: {} });
  await eachLimit(layers, 3, async (l) => {
    const id = shortId(l.digest);
    if (await hasBlob(s, l.digest)) {
      o.progress({ status: 'Layer already exists', id, progressDetail: {} });
      return;
    }
    const report = meterReport(o.progress, 'Pushing', id, l.size);
    report(0);
    await uploadBlob(s, l.digest, l.size, () => {
      const src = images.layerStream(l.digest);
      const v = verifier(l, report, false);
      src.on('error', (e) => v.destroy(e));
      return src.pipe(v);
    });
    o.progress({ status: 'Pushed', id, progressDetail: {} });
  });
  const configBytes = images.configBytes(image.id);
  if (!(await hasBlob(s, image.id))) await uploadBlob(s, image.id, configBytes.length, () => configBytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: image.id, size: configBytes.length },
      layers: layers.map((l) => ({ mediaType: MT.ociLayer, digest: l.digest, size: l.size })),
    }),
  );
  await putManifest(s, tag, manifest, 'the manifest');
  const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  images.addDigest(`${ref.name}@${digest}`, image.id);
  o.progress({ status: `${tag}: digest: ${digest} size: ${manifest.length}` });
  o.onDigest?.(digest, manifest.length, tag);
  return { digest, size: manifest.length };
}
