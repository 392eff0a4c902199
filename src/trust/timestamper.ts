/**
 * Server-managed timestamping (`berth registry serve --trust-timestamp-key FILE`): the registry
 * holds the timestamp role's key of the repositories whose root names it, and keeps their
 * `timestamp.json` fresh — after every push of trust data and, on a timer, before it expires — so
 * consumers get freshness guarantees without the publisher online. The key is an online key by
 * nature (kept unencrypted, mode 0600); all it can do is vouch that the snapshot is current: it
 * cannot sign tags (TUF spec 2.1.4: the timestamp role).
 *
 * The new timestamp replaces the old one in the repository's `_trust` artifact (a new manifest,
 * the other files' blobs unchanged) and the tag moves to it.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { systemClock, type Clock, type ClockTimer } from '../base/clock.js';
import { log } from '../base/log.js';
import { errorMessage } from '../base/errors.js';
import { sha256 } from '../base/digest.js';
import { MT } from '../spec/distribution.js';
import { TITLE_ANNOTATION, TRUST_FILE_TYPE, TRUST_TAG, trustFiles } from '../spec/trust.js';
import type { RegistryStorage } from '../registry/storage.js';
import type { TrustTimestamper } from '../registry/routes/deps.js';
import { keyIdOf, publicJsonOf, type PrivateKey } from './keys.js';
import { signTimestamp } from './metadata.js';

export class Timestamper implements TrustTimestamper {
  private readonly chains = new Map<string, Promise<void>>();
  private timer: ClockTimer | null = null;

  constructor(
    private readonly k: PrivateKey,
    private readonly ttlMs: number,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Loads the key, or makes one (Ed25519) when the file does not exist. */
  static open(file: string, ttlMs: number, clock: Clock = systemClock): Timestamper {
    if (!existsSync(file)) {
      const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' });
      writeFileSync(file, pem, { mode: 0o600 });
    }
    const key = createPrivateKey(readFileSync(file));
    const pub = publicJsonOf(key);
    return new Timestamper({ keyid: keyIdOf(pub), label: 'registry timestamp', public: pub, key }, ttlMs, clock);
  }

  key(): { keyid: string; public: object } {
    return { keyid: this.k.keyid, public: this.k.public };
  }

  /**
   * Re-signs every repository's timestamp that is past half its life, on the clock's timer (which
   * never keeps the process alive); one round at a time. `rounds` settles when a round is done.
   */
  start(storage: RegistryStorage, rounds?: (done: Promise<void>) => void): void {
    const every = Math.max(250, Math.min(60_000, this.ttlMs / 4));
    const tick = () => {
      const round = storage
        .repositories()
        .then(async (repos) => {
          for (const r of repos) await this.refresh(r, storage);
        })
        .catch((e: unknown) => log.warn('timestamp refresh failed', { err: errorMessage(e) }));
      rounds?.(round);
      void round.then(() => {
        if (this.timer) this.timer = this.clock.setTimeout(tick, every);
      });
    };
    this.timer = this.clock.setTimeout(tick, every);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** One repository at a time: a push and the timer never interleave their rewrites. */
  refresh(repo: string, storage: RegistryStorage): Promise<void> {
    const run = (this.chains.get(repo) ?? Promise.resolve()).then(() => this.resign(repo, storage));
    const tail = run.catch(() => undefined);
    this.chains.set(repo, tail);
    void tail.then(() => this.chains.get(repo) === tail && this.chains.delete(repo));
    return run;
  }

  private async resign(repo: string, storage: RegistryStorage): Promise<void> {
    const digest = await storage.tag(repo, TRUST_TAG);
    if (!digest) return;
    const read = (d: string) => readFileSync(storage.blobPath(d));
    const manifest = JSON.parse(read(digest).toString('utf8')) as {
      layers: Array<{ annotations?: Record<string, string> }>;
    } & Record<string, unknown>;
    const files = trustFiles(manifest);
    const root = files?.get('root.json');
    const snapshot = files?.get('snapshot.json');
    if (!files || !root || !snapshot) return;
    const roles = (
      JSON.parse(read(root.digest).toString('utf8')) as { signed: { roles: Record<string, { keyids: string[] }> } }
    ).signed.roles;
    if (!roles['timestamp']?.keyids.includes(this.k.keyid)) return; // not ours to sign
    const snapBytes = read(snapshot.digest);
    const snapHash = sha256(snapBytes).slice(7);
    const old = files.get('timestamp.json');
    type Signed = { version: number; expires: string; meta: Record<string, { hashes?: { sha256?: string } }> };
    const prev = old ? (JSON.parse(read(old.digest).toString('utf8')) as { signed: Signed }).signed : null;
    const now = this.clock.now();
    const same = prev?.meta['snapshot.json']?.hashes?.sha256 === snapHash;
    const fresh = prev && same && Date.parse(prev.expires) - now > this.ttlMs / 2;
    if (fresh) return;
    const bytes = signTimestamp(snapBytes, prev?.version ?? 0, now + this.ttlMs, this.k);
    const tsDigest = await storage.putBlobBytes(bytes);
    await storage.linkBlob(repo, tsDigest);
    const layers = manifest.layers.filter((l) => l.annotations?.[TITLE_ANNOTATION] !== 'timestamp.json');
    layers.push({
      mediaType: TRUST_FILE_TYPE,
      digest: tsDigest,
      size: bytes.length,
      annotations: { [TITLE_ANNOTATION]: 'timestamp.json' },
    } as never);
    layers.sort((a, b) =>
      (a.annotations?.[TITLE_ANNOTATION] ?? '').localeCompare(b.annotations?.[TITLE_ANNOTATION] ?? ''),
    );
    const next = Buffer.from(JSON.stringify({ ...manifest, layers }));
    const nextDigest = await storage.putBlobBytes(next);
    await storage.putManifest(repo, nextDigest, MT.ociManifest);
    await storage.setTag(repo, TRUST_TAG, nextDigest);
    log.debug('timestamp signed', { repo, version: (prev?.version ?? 0) + 1 });
  }
}
