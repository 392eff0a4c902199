/**
 * The consumer's side: a repository's tags resolved only through verified TUF metadata.
 *
 * The TUF client workflow (spec 5.3–5.6: root chain, timestamp, snapshot, targets, delegations;
 * signatures and thresholds, versions that only go up, expiry) is tuf-js's `Updater`, the
 * reference client, with an injected fetcher that reads the files from the repository's trust
 * artifact (bundle.ts). Its metadata directory is this host's memory of the repository:
 * `<dir>/<registry>/<repo>/` holds the pinned root and the newest verified timestamp, snapshot and
 * targets — what makes a rollback or a replay detectable.
 *
 * The first time a repository is seen its root is pinned: root version 1 from the artifact (trust
 * on first use; later roots must chain from it), or, when the caller names root keys (the daemon's
 * policy), the newest root, which must be signed by one of them. `pin.json` records which.
 *
 * Failures are explained in the field's words (refusals.ts): rollback, frozen (expired) metadata,
 * a signature by a revoked key, fewer signatures than the threshold, a tampered file, an unsigned tag.
 */
import { mkdirSync, existsSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, MetadataKind, Key } from '@tufjs/models';
import { Updater, type Fetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { systemClock, type Clock } from '../base/clock.js';
import { isBerthError } from '../base/errors.js';
import { writeFileAtomicSync } from '../base/fs.js';
import { isObject } from '../base/json.js';
import { endpointOf, RegistrySession, type ClientOptions, type Credentials } from '../distribution/client.js';
import { fetchFile, fetchIndex, type BundleIndex } from './bundle.js';
import { recordVerified, repoDirOf } from './cache.js';
import { DELEGATION, type Json, type TargetInfo } from './metadata.js';
import { explainFailure, readJson, refuse, short, trustedFor } from './refusals.js';

export { TrustRefusal, type RefusalReason } from './refusals.js';

export interface Anchor {
  /** key ids one of which must have signed the root that is pinned on first use */
  rootKeys?: string[];
}

export interface Pin {
  mode: 'tofu' | 'policy';
  at: string;
  rootKeys: string[];
}

export interface Resolved extends TargetInfo {
  /** the role whose signatures vouch for it: `targets` or `releases` */
  role: string;
}

class BundleFetcher implements Fetcher {
  constructor(
    private readonly s: RegistrySession,
    private readonly idx: BundleIndex,
  ) {}

  async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    const name = decodeURIComponent(url.slice(url.lastIndexOf('/') + 1));
    const b = await fetchFile(this.s, this.idx, name, maxLength);
    if (!b) throw new DownloadHTTPError(`${name} is not in the trust data`, 404);
    return b;
  }

  async downloadFile<T>(url: string, maxLength: number, handler: (file: string) => Promise<T>): Promise<T> {
    const d = mkdtempSync(join(tmpdir(), 'berth-tuf-'));
    try {
      const f = join(d, 'file');
      writeFileSync(f, await this.downloadBytes(url, maxLength));
      return await handler(f);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
}

export class VerifiedRepository {
  constructor(
    readonly name: string,
    readonly dir: string,
    readonly pin: Pin,
    private readonly updater: Updater,
    private readonly explain: (e: unknown) => Promise<Error>,
  ) {}

  /** The signed target of a tag; refuses an unsigned tag. */
  async resolve(tag: string): Promise<Resolved> {
    let t;
    try {
      t = await this.updater.getTargetInfo(tag);
    } catch (e) {
      if (!this.noReleases()) throw await this.explain(e);
    }
    const why = "no trust data for it: pushed without the publisher's keys, or revoked";
    if (!t || !t.hashes['sha256']) throw refuse(this.name, `tag ${tag} is not signed (${why})`, undefined, 'unsigned');
    const top = this.document('targets')?.['targets'];
    const inTop = isObject(top) && tag in top;
    const custom = t.custom as Json;
    return {
      digest: `sha256:${t.hashes['sha256']}`,
      size: t.length,
      role: inTop ? 'targets' : DELEGATION,
      ...(typeof custom['mediaType'] === 'string' ? { mediaType: custom['mediaType'] } : {}),
    };
  }

  /** A delegation no signer has signed into yet: the verified snapshot lists no releases.json. */
  private noReleases(): boolean {
    const meta = (readJson(join(this.dir, 'snapshot.json'))?.['signed'] as Json | undefined)?.['meta'];
    return isObject(meta) && !(`${DELEGATION}.json` in meta);
  }

  /** Every signed tag, by role file (loading the delegation when there is one). */
  async signedTags(): Promise<Map<string, Resolved>> {
    const out = new Map<string, Resolved>();
    try {
      // a path no tag can have: walks (and so verifies and stores) every delegated role
      await this.updater.getTargetInfo('\u0000');
    } catch (e) {
      if (!this.noReleases()) throw await this.explain(e);
    }
    for (const role of [DELEGATION, 'targets']) {
      const t = this.document(role)?.['targets'];
      if (!isObject(t)) continue;
      for (const [tag, v] of Object.entries(t)) {
        if (!isObject(v) || !isObject(v['hashes'])) continue;
        out.set(tag, { digest: `sha256:${String(v['hashes']['sha256'])}`, size: Number(v['length']), role });
      }
    }
    return out;
  }

  /** Whether a manifest digest is a signed target of any tag. */
  async isSigned(digest: string): Promise<boolean> {
    for (const t of (await this.signedTags()).values()) if (t.digest === digest) return true;
    return false;
  }

  /** The verified documents' signed parts, for `trust inspect`. */
  document(role: string): Json | null {
    return (readJson(join(this.dir, `${role}.json`))?.['signed'] as Json | undefined) ?? null;
  }
}

export class TrustClient {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    /** where pinned roots and verified metadata live */
    readonly dir: string,
    private readonly client: ClientOptions = {},
    /** dates pins and judges expiry when a refusal is explained (tuf-js reads the system time itself) */
    private readonly clock: Clock = systemClock,
  ) {}

  repoDir(name: string): string {
    return repoDirOf(this.dir, name); // host and repository do not depend on the client options
  }

  /**
   * Fetches and verifies a repository's trust data; one verification per repository at a time.
   * `offline`: when the registry cannot be reached, what this host verified last stands in for it
   * as long as its timestamp has not expired (freshness still holds: TUF's 5.4.4 check).
   */
  open(
    name: string,
    creds: Credentials | null,
    anchor: Anchor = {},
    o: { offline?: boolean } = {},
  ): Promise<VerifiedRepository> {
    const key = this.repoDir(name);
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.verify(name, creds, anchor, o.offline ?? false));
    this.locks.set(key, run);
    void run.finally(() => this.locks.get(key) === run && this.locks.delete(key)).catch(() => undefined);
    return run;
  }

  private async verify(
    name: string,
    creds: Credentials | null,
    anchor: Anchor,
    offline: boolean,
  ): Promise<VerifiedRepository> {
    const ep = endpointOf(name, this.client);
    const s = new RegistrySession(ep, creds, `repository:${ep.repo}:pull`);
    let idx: BundleIndex | null;
    try {
      idx = await fetchIndex(s);
    } catch (e) {
      if (offline && isBerthError(e, 'Unavailable') && existsSync(join(this.repoDir(name), 'timestamp.json')))
        return this.fromCache(name, e);
      throw e;
    }
    if (!idx)
      throw refuse(
        name,
        'the repository has no trust data: it was never signed (or its signatures were removed from the registry)',
      );
    const dir = this.repoDir(name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pin = existsSync(join(dir, 'root.json'))
      ? (readJson(join(dir, 'pin.json')) as unknown as Pin)
      : await this.pinRoot(name, s, idx, dir, anchor);
    const explain = (e: unknown) => explainFailure({ name, dir, session: s, index: idx, clock: this.clock }, e);
    let updater: Updater;
    try {
      updater = new Updater({
        metadataDir: dir,
        metadataBaseUrl: 'berth-trust://bundle/',
        fetcher: new BundleFetcher(s, idx),
        config: { maxRootRotations: 64 },
      });
      await updater.refresh();
    } catch (e) {
      throw await explain(e);
    }
    this.remember(dir);
    recordVerified(dir, idx.manifest); // the cache (cache.ts) may answer for this artifact from now on
    return new VerifiedRepository(name, dir, pin, updater, explain);
  }

  /** The repository as this host verified it last, while that is fresh (the registry being unreachable). */
  private async fromCache(name: string, cause: unknown): Promise<VerifiedRepository> {
    const dir = this.repoDir(name);
    const offline: Fetcher = {
      downloadBytes: () => Promise.reject(cause),
      downloadFile: () => Promise.reject(cause),
    };
    const updater = new Updater({
      metadataDir: dir,
      metadataBaseUrl: 'berth-trust://cache/',
      fetcher: offline,
      forceCache: true,
    });
    try {
      await updater.refresh();
    } catch {
      throw refuse(
        name,
        `the registry cannot be reached (${(cause as Error).message}) and the trust data this host verified ` +
          'last has expired: nothing fresh vouches for it',
        cause,
      );
    }
    const pin = readJson(join(dir, 'pin.json')) as unknown as Pin;
    return new VerifiedRepository(name, dir, pin, updater, async (e) =>
      refuse(
        name,
        `trust data (cached; the registry cannot be reached) does not verify: ${String(e instanceof Error ? e.message : e)}`,
        e,
      ),
    );
  }

  private async pinRoot(name: string, s: RegistrySession, idx: BundleIndex, dir: string, anchor: Anchor): Promise<Pin> {
    const policy = (anchor.rootKeys ?? []).length > 0;
    const file = policy ? 'root.json' : idx.files.has('1.root.json') ? '1.root.json' : 'root.json';
    const bytes = await fetchFile(s, idx, file, 512 * 1024);
    if (!bytes) throw refuse(name, 'the trust data has no root metadata');
    let md: Metadata<import('@tufjs/models').Root>;
    try {
      md = Metadata.fromJSON(
        MetadataKind.Root,
        JSON.parse(bytes.toString('utf8')) as Parameters<typeof Metadata.fromJSON>[1],
      );
      md.verifyDelegate('root', md);
    } catch (e) {
      throw refuse(name, `its root metadata does not verify: ${(e as Error).message}`);
    }
    const rootKeys = md.signed.roles['root']?.keyIDs ?? [];
    if (policy) {
      const named = rootKeys.filter((k) => anchor.rootKeys!.some((p) => k.startsWith(p)));
      const signedBy = named.filter((k) => {
        try {
          (md.signed.keys[k] as Key).verifySignature(md as unknown as Metadata<never>);
          return true;
        } catch {
          return false;
        }
      });
      if (signedBy.length === 0)
        throw refuse(
          name,
          `its root is not signed by a root key the trust policy names (${short(anchor.rootKeys!)}); ` +
            `it is signed by ${short(rootKeys)}`,
        );
    }
    writeFileAtomicSync(join(dir, 'root.json'), bytes, 0o600);
    const pin: Pin = { mode: policy ? 'policy' : 'tofu', at: new Date(this.clock.now()).toISOString(), rootKeys };
    writeFileAtomicSync(join(dir, 'pin.json'), `${JSON.stringify(pin)}\n`, 0o600);
    return pin;
  }

  /** Records every key id trusted now, by role, so a signature by a key dropped later reads as "revoked". */
  private remember(dir: string): void {
    const seen = (readJson(join(dir, 'keys-seen.json')) ?? {}) as Record<string, string[]>;
    let changed = false;
    for (const role of ['root', 'targets', 'snapshot', 'timestamp', DELEGATION]) {
      for (const k of trustedFor(dir, role)?.keyids ?? []) {
        const list = (seen[role] ??= []);
        if (!list.includes(k)) {
          list.push(k);
          changed = true;
        }
      }
    }
    if (changed) writeFileAtomicSync(join(dir, 'keys-seen.json'), `${JSON.stringify(seen)}\n`, 0o600);
  }
}
