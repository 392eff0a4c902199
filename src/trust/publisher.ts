/**
 * The publisher's workflow: a repository's trust data created, edited (tags signed and revoked,
 * signers added and removed, keys rotated), signed and published as the `_trust` artifact. It runs
 * on the publisher's machine, with keys that never reach a daemon or a registry (README: "A change
 * to DESIGN.md's layering"); `berth trust ...` (../cli/commands/trust.ts) parses, calls one method
 * here and renders.
 *
 * Everything outside the trust data is injected: the key store (and through it the passphrase
 * prompt), the verifier with this user's pinned roots, the registry credentials, the clock that
 * dates signatures, and where progress notes go. A publisher never signs over metadata it cannot
 * verify, except an expired timestamp or snapshot, which it is about to re-sign.
 */
import { failedPrecondition, notFound } from '../base/errors.js';
import type { Clock } from '../base/clock.js';
import { endpointOf, RegistrySession, type Credentials } from '../distribution/client.js';
import { fetchFile, fetchIndex, pushBundle } from './bundle.js';
import {
  generateKey,
  keyIdOf,
  parsePublicKey,
  type KeyStore,
  type KeyType,
  type PrivateKey,
  type PublicKeyJson,
} from './keys.js';
import {
  DEFAULT_EXPIRIES,
  RepositoryMetadata,
  roleKeys,
  type Expiries,
  type TargetInfo,
  type TopRole,
} from './metadata.js';
import { TrustRefusal, type TrustClient } from './verify.js';

export interface PublisherDeps {
  keys: KeyStore;
  /** verifies what is there before it is edited (this user's pinned roots) */
  verifier: TrustClient;
  /** the stored credentials for a repository's registry, if any */
  credentials(name: string): Credentials | null;
  clock: Clock;
  /** a line of progress for the user (the CLI writes it to stderr) */
  note(text: string): void;
  /** the type of keys made for a new repository */
  keyType?: KeyType;
  /** which root key (an id prefix) signs a new repository when the root directory holds several */
  rootKey?: string;
}

type RoleKey = PublicKeyJson & { keyid: string };

export interface SignResult {
  info: TargetInfo;
  /** where the tag went: `targets`, `releases (...)`, or a signature added to releases */
  role: string;
}

export class Publisher {
  constructor(private readonly d: PublisherDeps) {}

  private session(name: string, push: boolean): RegistrySession {
    const ep = endpointOf(name);
    return new RegistrySession(ep, this.d.credentials(name), `repository:${ep.repo}:pull${push ? ',push' : ''}`);
  }

  /**
   * Signs `name:tag`: the keys are loaded (and unsealed) first, so a publisher who cannot sign
   * pushes nothing; then `push` puts the image in the registry and says what it pushed.
   */
  async sign(
    name: string,
    tag: string,
    push: () => Promise<TargetInfo>,
    expiries = DEFAULT_EXPIRIES,
  ): Promise<SignResult> {
    const meta = await this.loadForEdit(name, { create: true, expiries });
    const info = await push();
    return { info, role: await this.signTag(name, meta, tag, info) };
  }

  /** Removes the signatures of a tag (or of every tag this user can sign); the tags revoked. */
  async revoke(name: string, tag: string | undefined): Promise<string[]> {
    const meta = await this.loadForEdit(name, { create: false });
    const all = [...Object.keys(meta.targetsOf('targets.json')), ...Object.keys(meta.targetsOf('releases.json'))];
    const tags = tag ? [tag] : [...new Set(all)];
    const releaseKeys = await this.heldReleaseKeys(meta);
    let n = 0;
    for (const t of tags) {
      if (meta.targetsOf('targets.json')[t]) (meta.setTarget('targets.json', t, null), n++);
      if (meta.targetsOf('releases.json')[t] && releaseKeys.length) (meta.setTarget('releases.json', t, null), n++);
    }
    if (!n) throw failedPrecondition(`no signed tag ${tag ?? ''} in ${name} that you can revoke`);
    await this.publish(name, meta, { releaseKeys });
    return tags;
  }

  /** Adds a signer to the `releases` delegation; the delegation's threshold after it. */
  async addSigner(name: string, who: string, pub: PublicKeyJson, threshold?: number): Promise<number> {
    const meta = await this.loadForEdit(name, { create: false });
    meta.addSigner(who, keyIdOf(pub), pub, threshold);
    await this.publish(name, meta);
    return meta.delegation()!.threshold;
  }

  /** Removes a signer (its key is revoked); the key id removed. */
  async removeSigner(name: string, who: string): Promise<string> {
    const meta = await this.loadForEdit(name, { create: false });
    const id = meta.removeSigner(who);
    await this.publish(name, meta);
    return id;
  }

  /** A role's key replaced by a new one; root re-signed (by the old root keys too, for root). */
  async rotate(
    name: string,
    role: TopRole,
    type: KeyType,
  ): Promise<{ old: string[]; keyid: string; rootVersion: number }> {
    const meta = await this.loadForEdit(name, { create: false });
    const ks = this.d.keys;
    const oldRoot = await ks.oneOf(roleKeys(meta.root, 'root').keyids, 'root');
    const k = generateKey(type, role === 'root' ? 'root' : `${name} ${role}`);
    await ks.add(k, role === 'root');
    const old = meta.rotate(role, k.keyid, k.public);
    await this.publish(name, meta, { rootSigners: role === 'root' ? [oldRoot] : [] });
    return { old, keyid: k.keyid, rootVersion: Number(meta.root['version']) };
  }

  /**
   * The repository's metadata to change: verified first, or a new repository with fresh keys when
   * it has none (and `create`).
   */
  private async loadForEdit(name: string, o: { create: boolean; expiries?: Expiries }): Promise<RepositoryMetadata> {
    const s = this.session(name, true);
    const idx = await fetchIndex(s);
    const expiries = o.expiries ?? DEFAULT_EXPIRIES;
    if (!idx) {
      if (!o.create)
        throw failedPrecondition(`${name} has no trust data: sign a tag first (berth trust sign ${name}:TAG)`);
      return this.initRepository(name, expiries);
    }
    try {
      await this.d.verifier.open(name, this.d.credentials(name));
    } catch (e) {
      const renewable =
        e instanceof TrustRefusal && e.reason === 'expired' && (e.role === 'timestamp' || e.role === 'snapshot');
      if (!renewable) throw e;
      this.d.note(`${name}: the trust data has expired; signing renews it\n`);
    }
    const files = new Map<string, Buffer>();
    for (const f of idx.files.keys()) files.set(f, (await fetchFile(s, idx, f, 4 << 20))!);
    return RepositoryMetadata.fromFiles(files, expiries);
  }

  private async initRepository(name: string, expiries: Expiries): Promise<RepositoryMetadata> {
    const ks = this.d.keys;
    const type = this.d.keyType ?? 'ed25519';
    const roots = ks.list().filter((k) => k.root);
    const want = this.d.rootKey;
    let root: PrivateKey;
    const pick = want ? roots.filter((k) => k.keyid.startsWith(want)) : roots;
    if (pick.length === 1) root = (await ks.get(pick[0]!.keyid))!;
    else if (pick.length > 1) {
      throw failedPrecondition(
        `several root keys in ${ks.rootDir}: set BERTH_TRUST_ROOT_KEY to the id of the one for ${name}`,
      );
    } else {
      if (want) throw notFound(`no root key ${want} in ${ks.rootDir}`);
      root = generateKey(type, 'root');
      await ks.add(root, true);
      const id = root.keyid.slice(0, 12);
      this.d.note(
        `Generated root key ${id} in ${ks.rootDir} — keep that directory offline; daily signing does not need it\n`,
      );
    }
    const keys = {} as Record<TopRole, RoleKey>;
    keys.root = { ...root.public, keyid: root.keyid };
    // a registry that signs timestamps (server-managed freshness) names its key; else the publisher holds one
    const hosted = await this.registryTimestampKey(name);
    if (hosted) keys.timestamp = hosted;
    for (const role of hosted ? (['targets', 'snapshot'] as const) : (['targets', 'snapshot', 'timestamp'] as const)) {
      const k = generateKey(type, `${name} ${role}`);
      await ks.add(k, false);
      keys[role] = { ...k.public, keyid: k.keyid };
    }
    const by = hosted ? `, timestamps signed by the registry (key ${hosted.keyid.slice(0, 12)})` : '';
    this.d.note(
      `Initialized trust data for ${name}: root ${root.keyid.slice(0, 12)}, targets ${keys.targets.keyid.slice(0, 12)}${by}\n`,
    );
    return RepositoryMetadata.create(keys, expiries);
  }

  /** The timestamp key of a registry that signs timestamps itself (`berth registry serve --trust-timestamp-key`). */
  private async registryTimestampKey(name: string): Promise<RoleKey | null> {
    const s = this.session(name, false);
    const res = await s.fetch('GET', '/trust/v1/_timestamp-key').catch(() => null);
    if (!res || !res.ok) {
      await res?.body?.cancel();
      return null;
    }
    const v = (await res.json()) as { keyid?: unknown; public?: unknown };
    const pub = parsePublicKey(v.public, "the registry's timestamp key");
    if (v.keyid !== keyIdOf(pub)) throw failedPrecondition("the registry's timestamp key does not match its id");
    return { ...pub, keyid: v.keyid };
  }

  /** Signs what changed and publishes the bundle. Keys are unsealed before signing (prompts first). */
  private async publish(
    name: string,
    meta: RepositoryMetadata,
    o: { append?: string[]; releaseKeys?: PrivateKey[]; rootSigners?: PrivateKey[] } = {},
  ): Promise<void> {
    const ks = this.d.keys;
    const keys = new Map<string, PrivateKey[]>([['releases.json', o.releaseKeys ?? []]]);
    const changed = meta.changedFiles();
    for (const [file, role] of [
      ['root.json', 'root'],
      ['targets.json', 'targets'],
    ] as const)
      if (changed.includes(file)) keys.set(file, [await ks.oneOf(roleKeys(meta.root, role).keyids, role)]);
    let timestampKey: PrivateKey | null = null;
    if (changed.length) {
      keys.set('snapshot.json', [await ks.oneOf(roleKeys(meta.root, 'snapshot').keyids, 'snapshot')]);
      // held here, or kept by the registry, which signs a timestamp when the bundle lands
      const ts = roleKeys(meta.root, 'timestamp').keyids;
      timestampKey = ts.some((k) => ks.has(k)) ? await ks.oneOf(ts, 'timestamp') : null;
    }
    if (o.rootSigners) meta.addRootSigners(o.rootSigners);
    const sign = (f: string) => keys.get(f) ?? [];
    meta.seal({ now: this.d.clock.now(), sign, timestampKey, ...(o.append ? { append: o.append } : {}) });
    await pushBundle(this.session(name, true), meta.files());
  }

  /** The keys of the `releases` delegation this user holds (unsealed). */
  private async heldReleaseKeys(meta: RepositoryMetadata): Promise<PrivateKey[]> {
    const ks = this.d.keys;
    const held = await Promise.all((meta.delegation()?.keyids ?? []).filter((k) => ks.has(k)).map((k) => ks.get(k)));
    return held.filter((k): k is PrivateKey => k !== null);
  }

  /** Puts a tag into the role this user can sign: the `releases` delegation when it holds a signer key, else targets. */
  private async signTag(name: string, meta: RepositoryMetadata, tag: string, info: TargetInfo | null): Promise<string> {
    const ks = this.d.keys;
    const d = meta.delegation();
    const releaseKeys = await this.heldReleaseKeys(meta);
    const holdsTargets = roleKeys(meta.root, 'targets').keyids.some((k) => ks.has(k));
    const labels = releaseKeys.map((k) => k.label).join(', ');
    if (releaseKeys.length) {
      const cur = meta.targetsOf('releases.json')[tag];
      const same = info && cur && cur.digest === info.digest && cur.size === info.size;
      const signedBy = new Set(meta.docs.get('releases.json')?.signatures.map((x) => x.keyid) ?? []);
      if (same && !meta.hasChanges() && releaseKeys.some((k) => !signedBy.has(k.keyid))) {
        await this.publish(name, meta, { append: ['releases.json'], releaseKeys });
        return `added a signature by ${labels} to releases`;
      }
      meta.setTarget('releases.json', tag, info);
      if (holdsTargets && meta.targetsOf('targets.json')[tag]) meta.setTarget('targets.json', tag, null);
      await this.publish(name, meta, { releaseKeys });
      return `releases (signed by ${labels}; threshold ${d!.threshold})`;
    }
    if (d && !holdsTargets) {
      const signers = Object.keys(d.signers).join(', ');
      throw failedPrecondition(
        `you hold no key of ${name}'s signers (${signers}) nor its targets key: your key may have been revoked`,
      );
    }
    meta.setTarget('targets.json', tag, info);
    await this.publish(name, meta);
    return 'targets';
  }
}
