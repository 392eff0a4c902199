/**
 * `docker load` / `docker save` tars. Load reads docker-archive (`manifest.json`, any Docker
 * version) or OCI layout (`index.json`); save writes both in one tar, as Docker 25+ does, so
 * `docker load`, skopeo and other OCI tools read it. Layers are streamed, never held in memory.
 */
import { promises as fsp } from 'node:fs';
import { join, normalize } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import * as tar from 'tar-stream';
import { errorMessage, invalidArgument } from '../base/errors.js';
import { asObject, isObject } from '../base/json.js';
import { sha256, type Digest } from '../base/digest.js';
import { maybeGunzip } from '../archive/layer.js';
import { extractTar, LOAD_POLICY, RootedDir } from '../archive/extract.js';
import { parseImageConfig } from '../spec/image-parse.js';
import type { ImageRecord } from './types.js';
import type { ImageCore } from './store.js';

const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** A path named by the archive's manifest.json: relative, inside the archive (read through RootedDir, which resolves it in the archive's root). */
function inside(rel: unknown): string {
  if (typeof rel !== 'string' || rel === '' || rel.startsWith('/') || normalize(rel).startsWith('..'))
    throw invalidArgument(`invalid image archive: bad path ${String(rel)}`);
  return rel;
}

const readJson = (root: RootedDir, rel: string): unknown => {
  try {
    return JSON.parse(root.readSmall(rel).toString('utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) throw invalidArgument(`invalid image archive: ${rel}: ${e.message}`);
    throw e;
  }
};

interface Found {
  config: string;
  layers: string[];
  tags: string[];
}

function fromDockerManifest(root: RootedDir): Found[] {
  const v = readJson(root, 'manifest.json');
  if (!Array.isArray(v)) throw invalidArgument('invalid image archive: manifest.json must be a list');
  return v.map((e) => {
    const o = asObject(e, 'manifest.json entry');
    const layers = o['Layers'];
    if (!Array.isArray(layers)) throw invalidArgument('invalid image archive: Layers must be a list');
    const tags = Array.isArray(o['RepoTags']) ? o['RepoTags'].filter((t): t is string => typeof t === 'string') : [];
    return { config: inside(o['Config']), layers: layers.map((l) => inside(l)), tags };
  });
}

const blobPath = (d: unknown) => {
  if (typeof d !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(d))
    throw invalidArgument(`invalid image archive: bad digest ${String(d)}`);
  return `blobs/sha256/${d.slice(7)}`;
};

async function fromOciIndex(root: RootedDir): Promise<Found[]> {
  let docs = 0;
  const out: Found[] = [];
  const visit = async (descs: unknown, name: string | null): Promise<void> => {
    if (!Array.isArray(descs)) return;
    for (const d of descs) {
      if (!isObject(d)) continue;
      const ann = isObject(d['annotations']) ? d['annotations'] : {};
      const refName = typeof ann['io.containerd.image.name'] === 'string' ? ann['io.containerd.image.name'] : name;
      if (++docs > 1000) throw invalidArgument('invalid image archive: more than 1000 manifests');
      const doc = asObject(readJson(root, blobPath(d['digest'])), 'OCI manifest');
      if (Array.isArray(doc['manifests'])) {
        await visit(
          doc['manifests'].filter(
            (m) => !isObject(m) || !isObject(m['platform']) || m['platform']['architecture'] === 'amd64',
          ),
          refName,
        );
        continue;
      }
      const cfg = asObject(doc['config'], 'OCI manifest config');
      const layers = Array.isArray(doc['layers']) ? doc['layers'] : [];
      out.push({
        config: blobPath(cfg['digest']),
        layers: layers.map((l) => blobPath(asObject(l, 'layer')['digest'])),
        tags: refName ? [refName] : [],
      });
    }
  };
  await visit(asObject(readJson(root, 'index.json'), 'index.json')['manifests'], null);
  return out;
}

/** Loads every image of the archive; returns the tags loaded (or ids for untagged images). */
export async function loadArchive(core: ImageCore, tmpRoot: string, input: Readable): Promise<string[]> {
  const dir = join(tmpRoot, `load-${randomBytes(6).toString('hex')}`);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  let root: RootedDir | null = null;
  try {
    await extractTar(await maybeGunzip(input), dir, LOAD_POLICY);
    const r = (root = new RootedDir(dir, 'image archive'));
    const found = r.exists('manifest.json')
      ? fromDockerManifest(r)
      : r.exists('index.json')
        ? await fromOciIndex(r)
        : null;
    if (!found) throw invalidArgument('invalid image archive: neither manifest.json nor index.json found');
    const loaded: string[] = [];
    for (const f of found) {
      const configBytes = r.readSmall(f.config);
      const config = parseImageConfig(configBytes);
      if (config.rootfs.diff_ids.length !== f.layers.length)
        throw invalidArgument('invalid image archive: layer count does not match the config');
      // each layer is checked against its diff id before it lands in content
      await Promise.all(
        f.layers.map((l, i) =>
          core.ingestLayer(r.stream(l), config.rootfs.diff_ids[i]).catch((e: unknown) => {
            throw invalidArgument(
              `invalid image archive: layer ${i} (${l}) is not ${config.rootfs.diff_ids[i]}: ${errorMessage(e)}`,
              e,
            );
          }),
        ),
      );
      const img = await core.addImage(configBytes);
      for (const t of f.tags) core.setTag(t, img.id);
      loaded.push(...(f.tags.length ? f.tags.map((t) => core.resolve(t).tag ?? t) : [img.id]));
    }
    return loaded;
  } finally {
    root?.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

function addFile(pack: tar.Pack, name: string, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) =>
    pack.entry({ name, mode: 0o644, mtime: new Date(0) }, data, (e) => (e ? reject(e) : resolve())),
  );
}

function addBlob(pack: tar.Pack, core: ImageCore, d: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry(
      { name: `blobs/sha256/${d.slice(7)}`, size: core.content.size(d as Digest), mode: 0o644, mtime: new Date(0) },
      (e) => (e ? reject(e) : resolve()),
    );
    const rs = core.content.reader(d as Digest);
    rs.on('error', reject);
    rs.pipe(entry as unknown as NodeJS.WritableStream);
  });
}

/** Writes the images named by `refs` (tags or ids) as one docker-archive + OCI-layout tar. */
export async function saveArchive(core: ImageCore, refs: string[], out: Writable): Promise<void> {
  const chosen = new Map<string, { img: ImageRecord; tags: Set<string> }>();
  for (const r of refs) {
    const { image, tag } = core.resolve(r);
    const e = chosen.get(image.id) ?? { img: image, tags: new Set<string>() };
    for (const t of tag ? [tag] : image.repoTags) e.tags.add(t);
    chosen.set(image.id, e);
  }
  const pack = tar.pack();
  const done = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
    pack.on('error', reject);
  });
  (pack as unknown as NodeJS.ReadableStream).pipe(out);
  const written = new Set<string>();
  const manifestJson: unknown[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const index: unknown[] = [];
  for (const { img, tags } of chosen.values()) {
    for (const d of [img.id, ...img.config.rootfs.diff_ids]) {
      if (written.has(d)) continue;
      written.add(d);
      await addBlob(pack, core, d);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT_MANIFEST,
        config: { mediaType: MT_CONFIG, digest: img.id, size: core.content.size(img.id) },
        layers: img.config.rootfs.diff_ids.map((d) => ({
          mediaType: MT_LAYER,
          digest: d,
          size: core.content.size(d as Digest),
        })),
      }),
    );
    const md = sha256(manifest); // not stored: nothing would reference it (the collector would take it)
    if (!written.has(md)) {
      written.add(md);
      await addFile(pack, `blobs/sha256/${md.slice(7)}`, manifest);
    }
    const desc = { mediaType: MT_MANIFEST, digest: md, size: manifest.length };
    if (tags.size === 0) index.push(desc);
    for (const t of tags) {
      const colon = t.lastIndexOf(':');
      const name = t.slice(0, colon);
      (repositories[name] ??= {})[t.slice(colon + 1)] = img.id.slice(7);
      const full =
        name.includes('/') && /[.:]|^localhost/.test(name.split('/')[0]!)
          ? t
          : `docker.io/${name.includes('/') ? '' : 'library/'}${t}`;
      index.push({
        ...desc,
        annotations: { 'io.containerd.image.name': full, 'org.opencontainers.image.ref.name': t.slice(colon + 1) },
      });
    }
    manifestJson.push({
      Config: `blobs/sha256/${img.id.slice(7)}`,
      RepoTags: tags.size ? [...tags] : null,
      Layers: img.config.rootfs.diff_ids.map((d) => `blobs/sha256/${d.slice(7)}`),
    });
  }
  await addFile(
    pack,
    'index.json',
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index }),
  );
  await addFile(pack, 'manifest.json', JSON.stringify(manifestJson));
  await addFile(pack, 'oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  if (Object.keys(repositories).length) await addFile(pack, 'repositories', JSON.stringify(repositories));
  pack.finalize();
  await done;
}
