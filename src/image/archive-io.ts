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
import { tagOf, type ImageCore } from './store.js';
import { parseReference } from './reference.js';

const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/**
 * A path named by the archive's manifest.json: relative, inside the archive (read through
 * RootedDir, which resolves it in the archive's root).
 */
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

// --- the legacy layout (`docker save` before Docker 1.10: no manifest.json) ------------------

/** A v1 image id as a path component of the archive (dockerd: a directory name). */
const V1_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;
/** At most this many v1 images in one legacy archive (a parent chain is followed iteratively). */
const MAX_V1_IMAGES = 1000;

/** Go's json.Marshal escaping of a JSON text (HTML characters and the JS line separators). */
const goEscape = (json: string) =>
  json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** A timestamp as Go's time.Time marshals it (RFC 3339, fraction without trailing zeros, `Z` for UTC). */
function goTime(t: unknown): string {
  if (typeof t !== 'string') return '0001-01-01T00:00:00Z';
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) throw invalidArgument(`invalid image archive: bad created time ${JSON.stringify(t)}`);
  const frac = (m[2] ?? '').slice(0, 9).replace(/0+$/, '');
  const zone = m[3] === 'z' || m[3] === '+00:00' || m[3] === '-00:00' ? 'Z' : m[3]!;
  return `${m[1]}${frac ? `.${frac}` : ''}${zone}`;
}

/**
 * The image config dockerd 20.10 makes of a v1 image json (`v1.MakeConfigFromV1Config`): the json's
 * top-level fields (sorted, as Go marshals a map) less the v1-only ones, with `rootfs` and
 * `history`; so a legacy archive loads with the image ID dockerd gives it.
 */
function configFromV1(v1: Record<string, unknown>, diffIds: string[], history: unknown[]): Buffer {
  const out: Record<string, unknown> = { ...v1, rootfs: { type: 'layers', diff_ids: diffIds }, history };
  for (const k of ['id', 'parent', 'Size', 'parent_id', 'layer_id', 'throwaway']) delete out[k];
  const body = Object.keys(out)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(out[k])}`)
    .join(',');
  return Buffer.from(goEscape(`{${body}}`));
}

/** dockerd's `v1.HistoryFromConfig`: created, author, the container config's Cmd, comment. */
function historyFromV1(v1: Record<string, unknown>): Record<string, unknown> {
  const cc = isObject(v1['container_config']) ? v1['container_config'] : {};
  const cmd = Array.isArray(cc['Cmd']) ? cc['Cmd'].filter((c): c is string => typeof c === 'string') : [];
  const h: Record<string, unknown> = { created: goTime(v1['created']) };
  if (typeof v1['author'] === 'string' && v1['author']) h['author'] = v1['author'];
  if (cmd.length) h['created_by'] = cmd.join(' ');
  if (typeof v1['comment'] === 'string' && v1['comment']) h['comment'] = v1['comment'];
  return h;
}

/**
 * Loads the legacy layout, as dockerd's `legacyLoad`: every directory holding a v1 `json` is an
 * image (its `layer.tar` its one layer, its `parent` the image below), registered bottom-up with
 * its parent; `repositories` (`{"name": {"tag": "<v1 id>"}}`) names them. Returns the tags set
 * (or, with none, the ids of the topmost images).
 */
async function loadLegacy(core: ImageCore, r: RootedDir, dir: string): Promise<string[]> {
  const repos = asObject(readJson(r, 'repositories'), 'repositories');
  const dirs = (await fsp.readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && V1_ID.test(e.name) && r.exists(`${e.name}/json`))
    .map((e) => e.name)
    .sort();
  if (dirs.length > MAX_V1_IMAGES) throw invalidArgument(`invalid image archive: more than ${MAX_V1_IMAGES} images`);
  // every tag names an image of the archive, and parses: checked before anything is registered
  const tags: Array<[string, string]> = [];
  for (const [name, byTag] of Object.entries(repos)) {
    for (const [tag, v1id] of Object.entries(asObject(byTag, `repositories: ${name}`))) {
      if (typeof v1id !== 'string' || !dirs.includes(v1id)) throw invalidArgument(`invalid target ID: ${String(v1id)}`); // dockerd's words
      const ref = `${name}:${tag}`;
      tagOf(ref);
      tags.push([ref, v1id]);
    }
  }
  const loaded = new Map<string, { id: string; diffIds: string[]; history: unknown[] }>();
  const parentOf = new Set<string>();
  for (const top of dirs) {
    // the chain from `top` down to an image already loaded (or the base), then registered upwards
    const chain: Array<{ v1id: string; v1: Record<string, unknown> }> = [];
    for (let v1id: string | null = top; v1id !== null && !loaded.has(v1id);) {
      if (chain.some((c) => c.v1id === v1id) || chain.length >= MAX_V1_IMAGES)
        throw invalidArgument(`invalid image archive: the parents of ${top} loop`);
      if (!V1_ID.test(v1id)) throw invalidArgument(`invalid image archive: bad parent id ${JSON.stringify(v1id)}`);
      const v1 = asObject(readJson(r, `${v1id}/json`), `${v1id}/json`);
      chain.push({ v1id, v1 });
      const parent = v1['parent'];
      if (parent !== undefined && parent !== null && typeof parent !== 'string')
        throw invalidArgument(`invalid image archive: ${v1id}/json: parent must be a string`);
      v1id = parent ? parent : null;
      if (v1id) parentOf.add(v1id);
    }
    for (const { v1id, v1 } of chain.reverse()) {
      const p = typeof v1['parent'] === 'string' && v1['parent'] ? loaded.get(v1['parent'])! : null;
      const { diffId } = await core.ingestLayer(r.stream(`${v1id}/layer.tar`)).catch((e: unknown) => {
        throw invalidArgument(`invalid image archive: layer ${v1id}/layer.tar: ${errorMessage(e)}`, e);
      });
      const diffIds = [...(p?.diffIds ?? []), diffId];
      const history = [...(p?.history ?? []), historyFromV1(v1)];
      const img = await core.addImage(configFromV1(v1, diffIds, history), p?.id ?? '');
      loaded.set(v1id, { id: img.id, diffIds, history });
    }
  }
  for (const [ref, v1id] of tags) core.setTag(ref, loaded.get(v1id)!.id);
  return tags.length
    ? tags.map(([ref]) => core.resolve(ref).tag ?? ref)
    : [...loaded].filter(([v1id]) => !parentOf.has(v1id)).map(([, l]) => l.id);
}

/** Loads every image of the archive; returns the tags loaded (or ids for untagged images). */
export async function loadArchive(core: ImageCore, tmpRoot: string, input: Readable): Promise<string[]> {
  const dir = join(tmpRoot, `load-${randomBytes(6).toString('hex')}`);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  let root: RootedDir | null = null;
  try {
    await extractTar(await maybeGunzip(input), dir, LOAD_POLICY);
    const r = (root = new RootedDir(dir, 'image archive'));
    if (!r.exists('manifest.json') && !r.exists('index.json') && r.exists('repositories'))
      return await loadLegacy(core, r, dir);
    const found = r.exists('manifest.json')
      ? fromDockerManifest(r)
      : r.exists('index.json')
        ? await fromOciIndex(r)
        : null;
    if (!found)
      throw invalidArgument('invalid image archive: neither manifest.json, index.json nor repositories found');
    for (const f of found) f.tags.forEach(tagOf); // a bad tag is the archive's fault: refused before anything lands
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

/** The repository a reference names when it is a name alone (no tag, no digest, not an ID), else null. */
function repoOnly(ref: string): string | null {
  if (/^sha256:/.test(ref)) return null;
  try {
    const p = parseReference(ref);
    return p.tag || p.digest ? null : p.name;
  } catch {
    return null;
  }
}

/** Writes the images named by `refs` (tags or ids) as one docker-archive + OCI-layout tar. */
export async function saveArchive(core: ImageCore, refs: string[], out: Writable): Promise<void> {
  const chosen = new Map<string, { img: ImageRecord; tags: Set<string> }>();
  const add = (image: ImageRecord, tag: string | null) => {
    const e = chosen.get(image.id) ?? { img: image, tags: new Set<string>() };
    if (tag) e.tags.add(tag);
    chosen.set(image.id, e);
  };
  for (const r of refs) {
    // like dockerd 20.10 (tarexporter's parseNames): a name alone saves every tag of that
    // repository; a tag saves that tag; an ID (or a digest) saves the image with no RepoTags
    // and no `repositories` entry
    const named = repoOnly(r);
    const repoTags = named
      ? core.list().flatMap((i) => i.repoTags.filter((t) => t.startsWith(`${named}:`)).map((t) => [i, t] as const))
      : [];
    if (repoTags.length) for (const [i, t] of repoTags) add(i, t);
    else {
      const { image, tag } = core.resolve(r);
      add(image, tag);
    }
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
