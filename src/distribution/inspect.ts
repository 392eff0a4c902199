/**
 * `GET /distribution/{name}/json`: what a registry holds under a reference, without pulling it,
 * as dockerd 20.10 answers it: the manifest's descriptor (media type, digest, size) and the
 * platforms it serves (an index's entries, or the image config's os/architecture).
 */
import { createHash } from 'node:crypto';
import { invalidArgument, notFound } from '../base/errors.js';
import { isObject } from '../base/json.js';
import { INDEX_TYPES, MAX_MANIFEST_BYTES, parseManifest } from '../spec/distribution.js';
import {
  endpointOf,
  registryErrorOf,
  RegistryHttpError,
  RegistrySession,
  type ClientOptions,
  type Credentials,
} from './client.js';
import { ACCEPT, fetchBlob, MAX_CONFIG_BYTES, readCapped } from './pull.js';
import { digestOf, verifier } from './transfer.js';
import { parseReference } from './reference.js';

/** One platform as dockerd shows it (OCI's `platform`, in its field order; empty optional fields left out). */
export interface PlatformView {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

export interface DistributionInspect {
  Descriptor: { mediaType: string; digest: string; size: number };
  Platforms: PlatformView[];
}

function platformView(v: unknown): PlatformView {
  const o = isObject(v) ? v : {};
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : '');
  const p: PlatformView = { architecture: str('architecture'), os: str('os') };
  if (str('os.version')) p['os.version'] = str('os.version');
  const feats = Array.isArray(o['os.features'])
    ? o['os.features'].filter((f): f is string => typeof f === 'string')
    : [];
  if (feats.length) p['os.features'] = feats;
  if (str('variant')) p.variant = str('variant');
  return p;
}

export async function inspectDistribution(
  refText: string,
  o: { creds: Credentials | null; client?: ClientOptions },
): Promise<DistributionInspect> {
  const ref = parseReference(refText); // dockerd: 400 "invalid reference format: ..."
  const ep = endpointOf(ref.name, o.client);
  const s = new RegistrySession(ep, o.creds, `repository:${ep.repo}:pull`);
  const wanted = ref.digest ?? ref.tag ?? 'latest';
  const res = await s.fetch('GET', `/v2/${ep.repo}/manifests/${wanted}`, { headers: { Accept: ACCEPT } });
  // dockerd: 404 {"message":"manifest unknown: manifest unknown"} (the registry's error as Docker prints it)
  if (res.status === 404) throw notFound((await registryErrorOf(res)).text);
  if (!res.ok) throw new RegistryHttpError(res.status, `fetching manifest ${wanted}: ${res.status}`);
  const bytes = await readCapped(res, MAX_MANIFEST_BYTES, `manifest ${wanted}`);
  if (ref.digest && digestOf(ref.digest, bytes) !== ref.digest)
    throw invalidArgument(`manifest ${ref.digest} failed verification: content is ${digestOf(ref.digest, bytes)}`);
  const m = parseManifest(bytes, res.headers.get('content-type') ?? '');
  const digest = ref.digest ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const out: DistributionInspect = {
    Descriptor: { mediaType: m.mediaType, digest, size: bytes.length },
    Platforms: [],
  };
  if (INDEX_TYPES.includes(m.mediaType)) {
    out.Platforms = (m.manifests ?? []).map((d) => platformView(d.platform));
    return out;
  }
  // an image: its config says the platform (dockerd leaves Platforms empty when it cannot read it)
  const cfg = m.config!;
  if (cfg.size > MAX_CONFIG_BYTES) return out;
  try {
    const body = await fetchBlob(s, cfg);
    const parts: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const v = verifier(cfg, () => undefined);
      body
        .pipe(v)
        .on('data', (c: Buffer) => parts.push(c))
        .on('end', resolve)
        .on('error', reject);
      body.on('error', (e) => v.destroy(e));
    });
    const p = platformView(JSON.parse(Buffer.concat(parts).toString('utf8')));
    if (p.os || p.architecture) out.Platforms.push(p);
  } catch {
    /* as dockerd: no platform when the config cannot be read */
  }
  return out;
}
