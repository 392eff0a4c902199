/**
 * The verified-metadata cache: a repository's trust data, once fully verified (verify.ts, tuf-js's
 * client workflow), is re-checked from this host's own copy while the registry still serves the
 * same trust artifact, without tuf-js and without fetching a file. Only a positive answer comes
 * from here: whatever does not check out (a changed artifact, an expired role, a file that is not
 * the artifact's, a signature, a delegation shape this code does not walk) is `null`, and the
 * caller runs the full verification, which fetches, verifies and explains a refusal in its words.
 *
 * What a cached answer rests on (each checked on every use, in this order):
 * - **root-only state**: the repository's directory, `verified.json` and every document read are
 *   owned by this process's user and writable by no one else (a cache another user could write
 *   vouches for nothing);
 * - **the registry's current artifact**: `verified.json` holds the bytes of the artifact manifest
 *   the full verification read; their digest must be the digest the registry serves for `_trust`
 *   now (the caller's, asked fresh each time), so nothing newer exists to be seen — a revocation or
 *   a new signature changes the artifact and sends the caller to the full path;
 * - **the artifact's files**: every cached document is byte for byte the blob that manifest names
 *   for it (so an older, validly signed document put in its place — a rollback — is not used);
 * - **TUF's checks on them** (spec 5.3–5.6 over the trusted set, as tuf-js makes them): each role
 *   signed by a threshold of distinct keys that root (or, for `releases`, the targets delegation)
 *   names, the `_type`s, timestamp -> snapshot -> targets/releases versions (and the hashes and
 *   length the referring document gives), and no role expired at `now` (5.3.10, 5.4.4, 5.5.6, 5.6.5).
 * `verified.json` is written only by the full verification, after it succeeded (`recordVerified`).
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalize } from '@tufjs/canonical-json';
import { writeFileAtomicSync } from '../base/fs.js';
import { endpointOf } from '../distribution/client.js';
import { isObject } from '../base/json.js';
import { trustFiles } from '../spec/trust.js';

/** The name of the one delegated role berth publishes (metadata.ts DELEGATION). */
const DELEGATION = 'releases';
const RECORD = 'verified.json';

type Json = Record<string, unknown>;

export interface CachedTarget {
  digest: string;
  size: number;
  /** `targets` or `releases` */
  role: string;
  mediaType?: string;
}

/** A repository's directory under a trust client's metadata directory `base` (`<registry host>/<repository>`). */
export function repoDirOf(base: string, name: string): string {
  const ep = endpointOf(name);
  return join(base, ep.host.replace(/:/g, '_'), ep.repo);
}

const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Called by the full verification once it has verified the artifact whose manifest is `manifest`
 * (and stored the documents in `dir`): the cache may answer for it from now on.
 */
export function recordVerified(dir: string, manifest: Buffer): void {
  writeFileAtomicSync(join(dir, RECORD), `${JSON.stringify({ manifest: manifest.toString('utf8') })}\n`, 0o600);
}

/** A file or directory only this process's user can change; null otherwise (or when missing). */
function ownedBytes(path: string, dir = false): Buffer | null {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return null;
  }
  const uid = process.geteuid?.() ?? -1;
  if (st.uid !== uid || (st.mode & 0o022) !== 0) return null;
  if (dir) return st.isDirectory() ? Buffer.alloc(0) : null;
  if (!st.isFile()) return null;
  try {
    return readFileSync(path);
  } catch {
    return null;
  }
}

function parse(b: Buffer): Json | null {
  try {
    const v: unknown = JSON.parse(b.toString('utf8'));
    return isObject(v) ? v : null;
  } catch {
    return null;
  }
}

function publicKey(k: unknown): KeyObject | null {
  if (!isObject(k) || !isObject(k['keyval'])) return null;
  const pub = k['keyval']['public'];
  if (typeof pub !== 'string') return null;
  try {
    if (pub.startsWith('-----BEGIN PUBLIC KEY-----')) return createPublicKey(pub);
    if (k['keytype'] === 'ed25519' && /^[0-9a-f]{64}$/.test(pub))
      // SPKI for Ed25519: the fixed 12-byte prefix (OID 1.3.101.112), then the raw key
      return createPublicKey({
        key: Buffer.from(`302a300506032b6570032100${pub}`, 'hex'),
        format: 'der',
        type: 'spki',
      });
  } catch {
    return null;
  }
  return null;
}

/** Whether `doc` is signed by `threshold` distinct keys among `keyids` (keys from `keys`). */
function signedBy(doc: Json, keys: unknown, keyids: unknown, threshold: unknown): boolean {
  if (!isObject(keys) || !Array.isArray(keyids) || typeof threshold !== 'number' || threshold < 1) return false;
  if (!Array.isArray(doc['signatures']) || !isObject(doc['signed'])) return false;
  const data = Buffer.from(canonicalize(doc['signed'] as Parameters<typeof canonicalize>[0]));
  const good = new Set<string>();
  for (const s of doc['signatures']) {
    if (!isObject(s) || typeof s['keyid'] !== 'string' || typeof s['sig'] !== 'string') continue;
    const id = s['keyid'];
    if (!keyids.includes(id) || good.has(id)) continue;
    const key = publicKey(keys[id]);
    if (!key) continue;
    try {
      if (verify(undefined, data, key, Buffer.from(s['sig'], 'hex'))) good.add(id);
    } catch {
      /* a malformed signature counts for nothing */
    }
  }
  return good.size >= threshold;
}

/** `signed` of a document of type `type`, unexpired at `now`; null otherwise. */
function current(doc: Json | null, type: string, now: number): Json | null {
  const s = doc?.['signed'];
  if (!isObject(s) || s['_type'] !== type || typeof s['version'] !== 'number') return null;
  const exp = typeof s['expires'] === 'string' ? Date.parse(s['expires']) : NaN;
  return Number.isFinite(exp) && now < exp ? s : null;
}

/** What `meta[file]` of a referring document says holds for `bytes` (version, and length and sha256 when given). */
function matchesMeta(meta: unknown, file: string, version: unknown, bytes: Buffer): boolean {
  if (!isObject(meta) || !isObject(meta[file])) return false;
  const m = meta[file];
  if (m['version'] !== version) return false;
  if (m['length'] !== undefined && m['length'] !== bytes.length) return false;
  if (m['hashes'] !== undefined) {
    if (!isObject(m['hashes']) || typeof m['hashes']['sha256'] !== 'string') return false;
    if (m['hashes']['sha256'] !== sha256hex(bytes)) return false;
  }
  return true;
}

/**
 * The signed target of `tag` from this host's verified copy of the repository in `dir`, when the
 * registry's `_trust` artifact is still `artifactDigest` and everything above holds at `now`
 * (ms since the epoch); null when the full verification must decide.
 */
export function cachedTarget(dir: string, artifactDigest: string, tag: string, now: number): CachedTarget | null {
  if (!ownedBytes(dir, true)) return null;
  const rec = ownedBytes(join(dir, RECORD));
  const recJson = rec && parse(rec);
  if (!recJson || typeof recJson['manifest'] !== 'string') return null;
  const manifest = Buffer.from(recJson['manifest'], 'utf8');
  if (`sha256:${sha256hex(manifest)}` !== artifactDigest) return null;
  const files = trustFiles(parse(manifest));
  if (!files) return null;
  // a cached document: owned, and the very blob the artifact names for it
  const read = (name: string, as = name): { bytes: Buffer; doc: Json } | null => {
    const want = files.get(as);
    const bytes = want && ownedBytes(join(dir, name));
    if (!want || !bytes || `sha256:${sha256hex(bytes)}` !== want.digest) return null;
    const doc = parse(bytes);
    return doc && { bytes, doc };
  };
  const root = read('root.json');
  const rootSigned = current(root?.doc ?? null, 'root', now);
  if (!root || !rootSigned || !isObject(rootSigned['roles'])) return null;
  const roles = rootSigned['roles'];
  const role = (name: string, doc: Json) =>
    isObject(roles[name]) && signedBy(doc, rootSigned['keys'], roles[name]['keyids'], roles[name]['threshold']);
  if (!role('root', root.doc)) return null;
  const ts = read('timestamp.json');
  const tsSigned = current(ts?.doc ?? null, 'timestamp', now);
  if (!ts || !tsSigned || !role('timestamp', ts.doc)) return null;
  const snap = read('snapshot.json');
  const snapSigned = current(snap?.doc ?? null, 'snapshot', now);
  if (!snap || !snapSigned || !role('snapshot', snap.doc)) return null;
  if (!matchesMeta(tsSigned['meta'], 'snapshot.json', snapSigned['version'], snap.bytes)) return null;
  const targets = read('targets.json');
  const targetsSigned = current(targets?.doc ?? null, 'targets', now);
  if (!targets || !targetsSigned || !role('targets', targets.doc)) return null;
  if (!matchesMeta(snapSigned['meta'], 'targets.json', targetsSigned['version'], targets.bytes)) return null;

  const found = (t: unknown, r: string): CachedTarget | null => {
    if (!isObject(t) || !isObject(t[tag])) return null;
    const v = t[tag];
    const h = isObject(v['hashes']) ? v['hashes']['sha256'] : undefined;
    if (typeof h !== 'string' || typeof v['length'] !== 'number') return null;
    const custom = isObject(v['custom']) ? v['custom'] : {};
    return {
      digest: `sha256:${h}`,
      size: v['length'],
      role: r,
      ...(typeof custom['mediaType'] === 'string' ? { mediaType: custom['mediaType'] } : {}),
    };
  };
  // TUF's pre-order walk: the top-level targets first, then the one delegation berth publishes
  const top = found(targetsSigned['targets'], 'targets');
  if (top) return top;
  const del = targetsSigned['delegations'];
  if (del === undefined) return null;
  if (!isObject(del) || !Array.isArray(del['roles']) || del['roles'].length !== 1) return null;
  const d = del['roles'][0];
  if (!isObject(d) || d['name'] !== DELEGATION || !Array.isArray(d['paths'])) return null;
  if (d['paths'].length !== 1 || d['paths'][0] !== '*') return null;
  const rel = read(`${DELEGATION}.json`);
  const relSigned = current(rel?.doc ?? null, 'targets', now);
  if (!rel || !relSigned || !signedBy(rel.doc, del['keys'], d['keyids'], d['threshold'])) return null;
  if (!matchesMeta(snapSigned['meta'], `${DELEGATION}.json`, relSigned['version'], rel.bytes)) return null;
  return found(relSigned['targets'], DELEGATION);
}
