/**
 * Signing keys: generation (Ed25519 or ECDSA P-256), their TUF public form and key ids, and the
 * key store that keeps private keys encrypted at rest.
 *
 * A private key file is JSON: the public key in TUF's form, the key id, a label, and the PKCS#8
 * private key sealed with AES-256-GCM under a key derived from a passphrase by scrypt. A wrong
 * passphrase fails GCM's tag check, so it is told apart from a corrupt file.
 *
 * Root keys live in their own directory (`rootDir`) — one that daily signing never reads, so it can
 * be a removable disk. Everything else (targets, snapshot, timestamp, delegated signers) is in
 * `<dir>/private`.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  scryptSync,
  sign,
  type KeyObject,
} from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalize } from '@tufjs/canonical-json';
import { failedPrecondition, invalidArgument, notFound } from '../base/errors.js';
import { sha256 } from '../base/digest.js';
import { writeFileAtomicSync } from '../base/fs.js';
import { isObject } from '../base/json.js';

export type KeyType = 'ed25519' | 'ecdsa';

/** A public key as TUF writes it in root and targets metadata (TUF spec 4.2, "KEY"). */
export interface PublicKeyJson {
  keytype: string;
  scheme: string;
  keyval: { public: string };
}

export interface PrivateKey {
  keyid: string;
  label: string;
  public: PublicKeyJson;
  key: KeyObject;
}

interface SealedKey {
  berthKey: 1;
  keyid: string;
  label: string;
  public: PublicKeyJson;
  sealed: {
    kdf: 'scrypt';
    N: number;
    r: number;
    p: number;
    salt: string;
    cipher: 'aes-256-gcm';
    iv: string;
    tag: string;
    data: string;
  };
}

const SCRYPT = { N: 1 << 14, r: 8, p: 1 };

/** TUF's key id: the SHA-256 of the canonical JSON of the public key. */
export function keyIdOf(pub: PublicKeyJson): string {
  return sha256(canonicalize(pub as unknown as Parameters<typeof canonicalize>[0])).slice('sha256:'.length);
}

export function publicJsonOf(key: KeyObject): PublicKeyJson {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType === 'ed25519') {
    // the raw 32 bytes are the last 32 of the SPKI encoding
    const der = pub.export({ format: 'der', type: 'spki' });
    return { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: der.subarray(der.length - 32).toString('hex') } };
  }
  if (pub.asymmetricKeyType === 'ec') {
    return {
      keytype: 'ecdsa',
      scheme: 'ecdsa-sha2-nistp256',
      keyval: { public: pub.export({ format: 'pem', type: 'spki' }).toString() },
    };
  }
  throw invalidArgument(
    `unsupported key type ${pub.asymmetricKeyType ?? '?'}: berth signs with ed25519 or ecdsa (P-256) keys`,
  );
}

export function generateKey(type: KeyType, label: string): PrivateKey {
  const { privateKey } =
    type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = publicJsonOf(privateKey);
  return { keyid: keyIdOf(pub), label, public: pub, key: privateKey };
}

/** A signature over `data` (canonical JSON bytes) in TUF's hex form. */
export function signBytes(k: PrivateKey, data: Buffer): string {
  return sign(k.key.asymmetricKeyType === 'ec' ? 'sha256' : null, data, k.key).toString('hex');
}

export function parsePublicKey(v: unknown, where: string): PublicKeyJson {
  if (
    !isObject(v) ||
    typeof v['keytype'] !== 'string' ||
    typeof v['scheme'] !== 'string' ||
    !isObject(v['keyval']) ||
    typeof v['keyval']['public'] !== 'string'
  )
    throw invalidArgument(`${where}: not a public key (expected TUF's {"keytype","scheme","keyval":{"public"}})`);
  return { keytype: v['keytype'], scheme: v['scheme'], keyval: { public: v['keyval']['public'] } };
}

/** Reads a public key file: TUF key JSON (what `trust key generate` writes) or a PEM public key. */
export function readPublicKeyFile(path: string): PublicKeyJson {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw notFound(`cannot read public key ${path}: ${(e as Error).message}`);
  }
  if (text.includes('-----BEGIN')) {
    try {
      return publicJsonOf(createPublicKey(text));
    } catch (e) {
      throw invalidArgument(`${path}: not a public key: ${(e as Error).message}`);
    }
  }
  try {
    return parsePublicKey(JSON.parse(text), path);
  } catch (e) {
    throw invalidArgument(`${path}: ${(e as Error).message}`);
  }
}

export function seal(k: PrivateKey, passphrase: string): SealedKey {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const kek = scryptSync(passphrase, salt, 32, SCRYPT);
  const c = createCipheriv('aes-256-gcm', kek, iv);
  c.setAAD(Buffer.from(k.keyid));
  const data = Buffer.concat([c.update(k.key.export({ format: 'der', type: 'pkcs8' })), c.final()]);
  const b64 = (b: Buffer) => b.toString('base64');
  return {
    berthKey: 1,
    keyid: k.keyid,
    label: k.label,
    public: k.public,
    sealed: {
      kdf: 'scrypt',
      ...SCRYPT,
      salt: b64(salt),
      cipher: 'aes-256-gcm',
      iv: b64(iv),
      tag: b64(c.getAuthTag()),
      data: b64(data),
    },
  };
}

export function parseSealed(v: unknown, where: string): SealedKey {
  if (!isObject(v) || v['berthKey'] !== 1 || typeof v['keyid'] !== 'string' || !isObject(v['sealed']))
    throw invalidArgument(`${where}: not a berth private key file`);
  const s = v['sealed'];
  for (const f of ['salt', 'iv', 'tag', 'data'])
    if (typeof s[f] !== 'string') throw invalidArgument(`${where}: private key file lacks ${f}`);
  return {
    berthKey: 1,
    keyid: v['keyid'],
    label: typeof v['label'] === 'string' ? v['label'] : '',
    public: parsePublicKey(v['public'], where),
    sealed: s as SealedKey['sealed'],
  };
}

export function unseal(f: SealedKey, passphrase: string): PrivateKey {
  const s = f.sealed;
  const kek = scryptSync(passphrase, Buffer.from(s.salt, 'base64'), 32, { N: s.N, r: s.r, p: s.p });
  const d = createDecipheriv('aes-256-gcm', kek, Buffer.from(s.iv, 'base64'));
  d.setAAD(Buffer.from(f.keyid));
  d.setAuthTag(Buffer.from(s.tag, 'base64'));
  let der: Buffer;
  try {
    der = Buffer.concat([d.update(Buffer.from(s.data, 'base64')), d.final()]);
  } catch {
    throw invalidArgument(`wrong passphrase for key ${f.keyid.slice(0, 12)} (${f.label})`);
  }
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  if (keyIdOf(publicJsonOf(key)) !== f.keyid)
    throw invalidArgument(`key file ${f.keyid.slice(0, 12)} does not hold the key its id names`);
  return { keyid: f.keyid, label: f.label, public: f.public, key };
}

/** Where passphrases come from: the environment (CI) or a prompt. */
export interface Passphrases {
  get(kind: 'root' | 'repository', label: string, confirm: boolean): Promise<string>;
}

/**
 * The key store: `<dir>/private/<keyid>.key` for daily keys, `<rootDir>/<keyid>.key` for root
 * keys. Keys are unsealed once per process and kept in memory for it.
 */
export class KeyStore {
  private readonly open = new Map<string, PrivateKey>();

  constructor(
    readonly dir: string,
    readonly rootDir: string,
    private readonly passphrases: Passphrases,
  ) {}

  private dirFor(root: boolean): string {
    return root ? this.rootDir : join(this.dir, 'private');
  }

  /** Seals and writes a new key; the passphrase is asked (with confirmation) once per kind. */
  async add(k: PrivateKey, root: boolean): Promise<void> {
    const pass = await this.passphrases.get(root ? 'root' : 'repository', k.label, true);
    const d = this.dirFor(root);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileAtomicSync(join(d, `${k.keyid}.key`), `${JSON.stringify(seal(k, pass), null, 2)}\n`, 0o600);
    this.open.set(k.keyid, k);
  }

  /**
   * Imports an exported key file: kept as it is when this store's passphrase opens it, else opened
   * with the exporter's passphrase (`exported()`) and sealed again with this store's.
   */
  async importSealed(
    text: string,
    root: boolean,
    where: string,
    exported: () => Promise<string>,
  ): Promise<{ keyid: string; label: string }> {
    let f: SealedKey;
    try {
      f = parseSealed(JSON.parse(text), where);
    } catch (e) {
      throw invalidArgument(`${where}: ${(e as Error).message}`);
    }
    const mine = await this.passphrases.get(root ? 'root' : 'repository', f.label, false);
    let k: PrivateKey;
    try {
      k = unseal(f, mine);
    } catch {
      k = unseal(f, await exported());
    }
    const d = this.dirFor(root);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileAtomicSync(join(d, `${f.keyid}.key`), `${JSON.stringify(seal(k, mine), null, 2)}\n`, 0o600);
    this.open.set(k.keyid, k);
    return { keyid: f.keyid, label: f.label };
  }

  /** The sealed file of a key (for export), found by id or id prefix. */
  sealedText(idPrefix: string): string {
    return readFileSync(this.pathOf(idPrefix), 'utf8');
  }

  private pathOf(idPrefix: string): string {
    const hits: string[] = [];
    for (const d of [this.dirFor(false), this.rootDir]) {
      if (!existsSync(d)) continue;
      for (const f of readdirSync(d)) if (f.endsWith('.key') && f.startsWith(idPrefix)) hits.push(join(d, f));
    }
    if (hits.length === 0) throw notFound(`no private key ${idPrefix} in ${this.dir}/private or ${this.rootDir}`);
    if (hits.length > 1) throw invalidArgument(`key id prefix ${idPrefix} is ambiguous`);
    return hits[0]!;
  }

  /** Whether this store holds the private half of a key (without unsealing it). */
  has(keyid: string): 'root' | 'repository' | null {
    if (existsSync(join(this.dirFor(false), `${keyid}.key`))) return 'repository';
    if (existsSync(join(this.rootDir, `${keyid}.key`))) return 'root';
    return null;
  }

  /** Unseals a key this store holds; null when it does not hold it. */
  async get(keyid: string): Promise<PrivateKey | null> {
    const cached = this.open.get(keyid);
    if (cached) return cached;
    const where = this.has(keyid);
    if (!where) return null;
    const path = join(this.dirFor(where === 'root'), `${keyid}.key`);
    const f = parseSealed(JSON.parse(readFileSync(path, 'utf8')), path);
    const k = unseal(f, await this.passphrases.get(where, f.label, false));
    this.open.set(keyid, k);
    return k;
  }

  /** The first of `keyids` this store holds, unsealed; throws naming the role when none is held. */
  async oneOf(keyids: string[], role: string): Promise<PrivateKey> {
    for (const id of keyids) {
      const k = await this.get(id);
      if (k) return k;
    }
    const rootHint =
      role === 'root'
        ? ` (root keys are read from ${this.rootDir}: set BERTH_TRUST_ROOT_DIR to where the offline root key is)`
        : '';
    throw failedPrecondition(
      `no private key for the ${role} role here: it is signed by ${keyids.map((k) => k.slice(0, 12)).join(', ')}${rootHint}`,
    );
  }

  list(): Array<{ keyid: string; label: string; root: boolean }> {
    const out: Array<{ keyid: string; label: string; root: boolean }> = [];
    for (const root of [true, false]) {
      const d = this.dirFor(root);
      if (!existsSync(d)) continue;
      for (const f of readdirSync(d)
        .filter((n) => n.endsWith('.key'))
        .sort()) {
        try {
          const s = parseSealed(JSON.parse(readFileSync(join(d, f), 'utf8')), f);
          out.push({ keyid: s.keyid, label: s.label, root });
        } catch {
          /* not a key file */
        }
      }
    }
    return out;
  }
}
