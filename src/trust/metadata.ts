/**
 * A repository's TUF metadata as its publisher edits it (TUF spec 1.0.31, section 4): the
 * top-level roles root, targets, snapshot and timestamp, and one delegated targets role,
 * `releases`, for a team of signers with a threshold.
 *
 * Targets are the repository's tags: target path = tag, length and sha256 = the size and digest of
 * the image manifest (as Notary did), so a tag resolves to one manifest digest.
 *
 * Files, as they travel in the bundle (bundle.ts) and as any TUF client expects them with
 * `consistent_snapshot: false`: `root.json` (the newest root) plus every root version as
 * `N.root.json` (so a client that pinned an old root walks the chain, 5.3), `timestamp.json`,
 * `snapshot.json`, `targets.json`, `releases.json`.
 *
 * The class changes documents in memory; `seal()` bumps the version of each changed role, signs it
 * with the keys the caller holds, and re-signs snapshot and timestamp over the result.
 */
import { Metadata, MetadataKind, Signature } from '@tufjs/models';
import { failedPrecondition, invalidArgument } from '../base/errors.js';
import { sha256 } from '../base/digest.js';
import { isObject } from '../base/json.js';
import { signBytes, type PrivateKey, type PublicKeyJson } from './keys.js';

export type Json = Record<string, unknown>;
export const SPEC_VERSION = '1.0.31';
export const DELEGATION = 'releases';
export const TOP_ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type TopRole = (typeof TOP_ROLES)[number];

export interface TargetInfo {
  digest: string;
  size: number;
  mediaType?: string;
}

export interface Expiries {
  root: number;
  targets: number;
  snapshot: number;
  timestamp: number;
}

const DAY = 86400_000;
export const DEFAULT_EXPIRIES: Expiries = { root: 365 * DAY, targets: 365 * DAY, snapshot: 365 * DAY, timestamp: DAY };

export interface Envelope {
  signed: Json;
  signatures: Array<{ keyid: string; sig: string }>;
}

export function parseEnvelope(bytes: Buffer, name: string): Envelope {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalidArgument(`trust metadata ${name} is not JSON`);
  }
  if (!isObject(v) || !isObject(v['signed']) || !Array.isArray(v['signatures']))
    throw invalidArgument(`trust metadata ${name} is not a signed TUF document`);
  const signatures = v['signatures']
    .filter(isObject)
    .map((s) => ({ keyid: String(s['keyid'] ?? ''), sig: String(s['sig'] ?? '') }));
  return { signed: v['signed'], signatures };
}

const KIND: Record<string, MetadataKind> = {
  root: MetadataKind.Root,
  targets: MetadataKind.Targets,
  snapshot: MetadataKind.Snapshot,
  timestamp: MetadataKind.Timestamp,
};

/** Signs `signed` with `keys` (keeping `keep`, signatures over the same bytes by other keys); the bytes of the file. */
export function signDocument(signed: Json, keys: PrivateKey[], keep: Envelope['signatures'] = []): Buffer {
  const kind = KIND[String(signed['_type'])];
  if (!kind) throw invalidArgument(`cannot sign a ${String(signed['_type'])} document`);
  const md = Metadata.fromJSON(
    kind as MetadataKind.Root,
    { signed, signatures: keep.filter((s) => !keys.some((k) => k.keyid === s.keyid)) } as unknown as Parameters<
      typeof Metadata.fromJSON
    >[1],
  );
  for (const k of keys) md.sign((data) => new Signature({ keyID: k.keyid, sig: signBytes(k, data) }), true);
  return Buffer.from(`${JSON.stringify(md.toJSON())}\n`);
}

export function roleKeys(root: Json, role: TopRole): { keyids: string[]; threshold: number } {
  const r = (root['roles'] as Record<string, { keyids: string[]; threshold: number }>)[role];
  if (!r) throw invalidArgument(`root metadata has no ${role} role`);
  return r;
}

export interface Delegation {
  keyids: string[];
  threshold: number;
  /** signer name -> key id, kept in the delegated role's unrecognized field `x-berth-signers` */
  signers: Record<string, string>;
}

const iso = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/**
 * timestamp.json after version `prevVersion`, over the exact bytes of snapshot.json (TUF 4.6:
 * its version, length and sha256), expiring at `expires` (ms). The publisher's seal() and the
 * registry's server-managed timestamping (timestamper.ts) both sign through it.
 */
export function signTimestamp(snapshot: Buffer, prevVersion: number, expires: number, key: PrivateKey): Buffer {
  const snapVersion = Number(parseEnvelope(snapshot, 'snapshot.json').signed['version']);
  const signed = {
    _type: 'timestamp',
    spec_version: SPEC_VERSION,
    version: prevVersion + 1,
    expires: iso(expires),
    meta: {
      'snapshot.json': { version: snapVersion, length: snapshot.length, hashes: { sha256: sha256(snapshot).slice(7) } },
    },
  };
  return signDocument(signed, [key]);
}

export class RepositoryMetadata {
  /** current signed parts, by file name (`root.json`, `targets.json`, ...) */
  readonly docs = new Map<string, Envelope>();
  /** every root version's bytes, by version */
  readonly roots = new Map<number, Buffer>();
  private readonly changed = new Set<string>();
  private rootSigners: PrivateKey[] = [];

  constructor(readonly expiries: Expiries = DEFAULT_EXPIRIES) {}

  static fromFiles(files: Map<string, Buffer>, expiries?: Expiries): RepositoryMetadata {
    const m = new RepositoryMetadata(expiries);
    for (const [name, bytes] of files) {
      const v = /^(\d+)\.root\.json$/.exec(name);
      if (v) m.roots.set(Number(v[1]), bytes);
      else m.put(name, bytes);
    }
    for (const f of ['root.json', 'targets.json', 'snapshot.json'])
      if (!m.docs.has(f)) throw invalidArgument(`trust data lacks ${f}`);
    return m;
  }

  /** A new repository: root v1 names the four role keys (one each, threshold 1). */
  static create(keys: Record<TopRole, PublicKeyJson & { keyid: string }>, expiries: Expiries): RepositoryMetadata {
    const m = new RepositoryMetadata(expiries);
    const keyMap: Json = {};
    const roles: Json = {};
    for (const role of TOP_ROLES) {
      const { keyid, ...pub } = keys[role];
      keyMap[keyid] = pub;
      roles[role] = { keyids: [keyid], threshold: 1 };
    }
    m.docs.set('root.json', {
      signed: {
        _type: 'root',
        spec_version: SPEC_VERSION,
        version: 0,
        expires: '',
        consistent_snapshot: false,
        keys: keyMap,
        roles,
      },
      signatures: [],
    });
    m.docs.set('targets.json', {
      signed: { _type: 'targets', spec_version: SPEC_VERSION, version: 0, expires: '', targets: {} },
      signatures: [],
    });
    m.docs.set('snapshot.json', {
      signed: { _type: 'snapshot', spec_version: SPEC_VERSION, version: 0, expires: '', meta: {} },
      signatures: [],
    });
    m.changed.add('root.json').add('targets.json');
    return m;
  }

  get root(): Json {
    return this.docs.get('root.json')!.signed;
  }

  get targets(): Json {
    return this.docs.get('targets.json')!.signed;
  }

  doc(name: string): Json | null {
    return this.docs.get(name)?.signed ?? null;
  }

  delegation(): Delegation | null {
    const d = this.targets['delegations'];
    if (!isObject(d) || !Array.isArray(d['roles'])) return null;
    const r = d['roles'].find((x) => isObject(x) && x['name'] === DELEGATION) as Json | undefined;
    if (!r) return null;
    return {
      keyids: r['keyids'] as string[],
      threshold: Number(r['threshold']),
      signers: (isObject(r['x-berth-signers']) ? r['x-berth-signers'] : {}) as Record<string, string>,
    };
  }

  /** Tag -> target in the role file `file` (`targets.json` or `releases.json`). */
  targetsOf(file: string): Record<string, TargetInfo> {
    const t = this.doc(file)?.['targets'];
    const out: Record<string, TargetInfo> = {};
    if (!isObject(t)) return out;
    for (const [tag, v] of Object.entries(t)) {
      if (!isObject(v) || !isObject(v['hashes'])) continue;
      const custom = isObject(v['custom']) ? v['custom'] : {};
      out[tag] = {
        digest: `sha256:${String(v['hashes']['sha256'])}`,
        size: Number(v['length']),
        ...(typeof custom['mediaType'] === 'string' ? { mediaType: custom['mediaType'] } : {}),
      };
    }
    return out;
  }

  /** Puts (or, with null, removes) a tag in a role's targets. */
  setTarget(file: 'targets.json' | 'releases.json', tag: string, info: TargetInfo | null): void {
    if (file === 'releases.json' && !this.docs.has(file))
      this.docs.set(file, {
        signed: { _type: 'targets', spec_version: SPEC_VERSION, version: 0, expires: '', targets: {} },
        signatures: [],
      });
    const signed = this.doc(file)!;
    const targets = { ...(signed['targets'] as Json) };
    if (info)
      targets[tag] = {
        length: info.size,
        hashes: { sha256: info.digest.replace(/^sha256:/, '') },
        ...(info.mediaType ? { custom: { mediaType: info.mediaType } } : {}),
      };
    else delete targets[tag];
    signed['targets'] = targets;
    this.changed.add(file);
  }

  /** Adds a signer's key to the `releases` delegation (creating it), with a threshold. */
  addSigner(name: string, keyid: string, pub: PublicKeyJson, threshold?: number): void {
    const d = isObject(this.targets['delegations']) ? (this.targets['delegations'] as Json) : { keys: {}, roles: [] };
    const keys = { ...(d['keys'] as Json), [keyid]: pub };
    const roles = [...(d['roles'] as Json[])];
    let r = roles.find((x) => x['name'] === DELEGATION);
    if (!r)
      roles.push(
        (r = { name: DELEGATION, keyids: [], threshold: 1, paths: ['*'], terminating: true, 'x-berth-signers': {} }),
      );
    const signers = { ...(r['x-berth-signers'] as Record<string, string>), [name]: keyid };
    r['x-berth-signers'] = signers;
    r['keyids'] = [...new Set(Object.values(signers))];
    if (threshold !== undefined) r['threshold'] = threshold;
    if (Number(r['threshold']) > (r['keyids'] as string[]).length)
      throw invalidArgument(
        `threshold ${String(r['threshold'])} is more than the ${(r['keyids'] as string[]).length} signer key(s)`,
      );
    this.targets['delegations'] = { keys, roles };
    this.changed.add('targets.json');
  }

  /** Removes a signer from the delegation: signatures by its key stop counting (revocation). */
  removeSigner(name: string): string {
    const d = this.delegation();
    const keyid = d?.signers[name];
    if (!d || !keyid) throw invalidArgument(`${name} is not a signer of this repository`);
    const dj = this.targets['delegations'] as { keys: Json; roles: Json[] };
    const r = dj.roles.find((x) => x['name'] === DELEGATION)!;
    const signers = { ...d.signers };
    delete signers[name];
    r['x-berth-signers'] = signers;
    r['keyids'] = [...new Set(Object.values(signers))];
    if (Number(r['threshold']) > (r['keyids'] as string[]).length)
      r['threshold'] = Math.max(1, (r['keyids'] as string[]).length);
    if (!Object.values(signers).includes(keyid)) delete dj.keys[keyid];
    this.changed.add('targets.json');
    return keyid;
  }

  /**
   * Replaces a top-level role's keys with `pub` (key rotation). The old keys are dropped from root:
   * whatever they sign from now on is refused. For the root role itself, the new root is signed by
   * the old root keys too (`seal` does that), as 5.3.4 requires of a rotation.
   */
  rotate(role: TopRole, keyid: string, pub: PublicKeyJson): string[] {
    const root = this.root;
    const roles = root['roles'] as Record<string, { keyids: string[]; threshold: number }>;
    const old = roles[role]!.keyids;
    const keys = { ...(root['keys'] as Json), [keyid]: pub };
    roles[role] = { keyids: [keyid], threshold: 1 };
    const used = new Set(Object.values(roles).flatMap((r) => r.keyids));
    for (const id of Object.keys(keys)) if (!used.has(id)) delete keys[id];
    root['keys'] = keys;
    this.changed.add('root.json');
    // a new targets key must re-sign targets, a new snapshot key the snapshot
    if (role === 'targets') this.changed.add('targets.json');
    return old;
  }

  /** The root keys that signed the last root: a root rotation needs them too. */
  addRootSigners(keys: PrivateKey[]): void {
    this.rootSigners = keys;
  }

  hasChanges(): boolean {
    return this.changed.size > 0;
  }

  changedFiles(): string[] {
    return [...this.changed];
  }

  /**
   * Bumps and signs every changed role, then snapshot (and timestamp unless `timestampKey` is
   * null: the registry keeps that key). `sign(file)` gives the keys for a role file;
   * `append` (releases only) adds a signature to an unchanged document instead of a new version.
   */
  seal(o: {
    now: number;
    sign: (file: string) => PrivateKey[];
    timestampKey: PrivateKey | null;
    append?: string[];
  }): void {
    const bump = (file: string, kind: keyof Expiries) => {
      const e = this.docs.get(file)!;
      const signed = {
        ...e.signed,
        version: Number(e.signed['version']) + 1,
        expires: iso(o.now + this.expiries[kind]),
      };
      const bytes = signDocument(signed, file === 'root.json' ? [...this.rootSigners, ...o.sign(file)] : o.sign(file));
      this.put(file, bytes);
      if (file === 'root.json') this.roots.set(Number(signed['version']), bytes);
      return bytes;
    };
    for (const file of o.append ?? []) {
      const e = this.docs.get(file)!;
      this.put(file, signDocument(e.signed, o.sign(file), e.signatures));
    }
    if (this.changed.has('root.json')) bump('root.json', 'root');
    for (const file of [...this.changed].filter((f) => f !== 'root.json')) bump(file, 'targets');
    if (this.changed.size) {
      const meta: Json = {};
      for (const [name, e] of this.docs)
        if (name !== 'root.json' && name !== 'snapshot.json' && name !== 'timestamp.json')
          meta[name] = { version: e.signed['version'] };
      this.docs.get('snapshot.json')!.signed['meta'] = meta;
      bump('snapshot.json', 'snapshot');
    }
    if (o.timestampKey && (this.changed.size || !this.docs.has('timestamp.json')))
      this.timestamp(o.now, o.timestampKey);
    this.changed.clear();
  }

  /** A new timestamp over the current snapshot. */
  timestamp(now: number, key: PrivateKey, ttl = this.expiries.timestamp): void {
    const prev = this.docs.get('timestamp.json')?.signed['version'];
    this.put('timestamp.json', signTimestamp(this.fileBytes('snapshot.json'), Number(prev ?? 0), now + ttl, key));
  }

  /** A document's bytes as signed or as fetched: the timestamp hashes the snapshot's exact bytes. */
  private readonly bytes = new Map<Envelope, Buffer>();

  private put(name: string, bytes: Buffer): void {
    const e = parseEnvelope(bytes, name);
    this.docs.set(name, e);
    this.bytes.set(e, bytes);
  }

  /** A document's file bytes (a new document, not signed yet, is serialized once). */
  fileBytes(name: string): Buffer {
    const e = this.docs.get(name);
    if (!e) throw failedPrecondition(`no ${name}`);
    let b = this.bytes.get(e);
    if (!b) this.bytes.set(e, (b = Buffer.from(`${JSON.stringify({ signed: e.signed, signatures: e.signatures })}\n`)));
    return b;
  }

  /** Every file of the bundle. */
  files(): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const [v, b] of this.roots) out.set(`${v}.root.json`, b);
    const newest = Math.max(...this.roots.keys());
    out.set('root.json', this.roots.get(newest)!);
    for (const name of this.docs.keys()) if (name !== 'root.json') out.set(name, this.fileBytes(name));
    return out;
  }
}
