/**
 * The daemon's enforcement of its trust policy. A pull of a covered repository resolves the tag
 * through verified metadata and fetches that digest (what the registry's tag says does not
 * matter); a digest must be a signed target. Creating or starting a container from a covered
 * repository needs the image's digest there to be signed now (freshness: the metadata is
 * verified again, so a revoked tag or expired metadata stops new containers too).
 *
 * The daemon's pinned roots live in `<root>/trust/`.
 */
import { systemClock, type Clock } from '../base/clock.js';
import { failedPrecondition } from '../base/errors.js';
import type { ClientOptions, Credentials } from '../distribution/client.js';
import { readPolicy, ruleFor, type GateRule, type TrustPolicy } from './policy.js';
import { TrustClient } from './verify.js';

export type { GateRule } from './policy.js';

/** What the gate reads of an image record (the engine's ImageRecord has these). */
export interface NamedImage {
  repoTags: string[];
  repoDigests: string[];
}

/**
 * The repository name of a reference the engine has already parsed and resolved, normalized as
 * Docker does (image/reference.ts): without its digest or tag, and without `docker.io/` or
 * `library/` for Docker Hub's official images.
 */
export function repositoryOf(ref: string): string {
  let name = ref.includes('@') ? ref.slice(0, ref.indexOf('@')) : ref;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) name = name.slice(0, colon);
  for (const hub of ['docker.io/', 'index.docker.io/']) if (name.startsWith(hub)) name = name.slice(hub.length);
  if (name.startsWith('library/') && name.split('/').length === 2) name = name.slice('library/'.length);
  return name;
}

export class TrustGate {
  private readonly client: TrustClient;

  constructor(
    readonly policy: TrustPolicy,
    dir: string,
    registries: ClientOptions,
    clock: Clock = systemClock,
  ) {
    this.client = new TrustClient(dir, registries, clock);
  }

  static open(policyFile: string, dir: string, registries: ClientOptions, clock: Clock = systemClock): TrustGate {
    return new TrustGate(readPolicy(policyFile), dir, registries, clock);
  }

  covers(name: string): GateRule | null {
    const r = ruleFor(this.policy, name);
    return r.require === 'signed' ? r : null;
  }

  /** For a pull: the digest to fetch for `name:tag` / `name@digest`, or null when the policy does not cover it. */
  async pin(
    name: string,
    tag: string | undefined,
    digest: string | undefined,
    creds: Credentials | null,
  ): Promise<string | null> {
    const rule = this.covers(name);
    if (!rule) return null;
    const repo = await this.client.open(name, creds, { rootKeys: rule.rootKeys });
    if (digest) {
      if (!(await repo.isSigned(digest)))
        throw failedPrecondition(
          `trust: ${name}: ${digest} is not signed by the publisher (the trust policy requires signed images)`,
        );
      return digest;
    }
    return (await repo.resolve(tag ?? 'latest')).digest;
  }

  /**
   * For create and start: the repository the image is named by must vouch for it — its digest
   * there is a signed target. An image referred to by id must be vouched for by every covered
   * repository it is known under; one with no name at all falls under the policy's default.
   */
  async check(image: NamedImage, ref: string): Promise<void> {
    const byId = /^(sha256:)?[a-f0-9]{12,64}$/.test(ref);
    const all = [
      ...image.repoTags.map((t) => t.slice(0, t.lastIndexOf(':'))),
      ...image.repoDigests.map((d) => d.slice(0, d.indexOf('@'))),
    ];
    const names = new Set(byId ? all : [repositoryOf(ref)]);
    if (names.size === 0) {
      if (this.policy.default.require === 'signed')
        throw failedPrecondition(
          `trust: ${ref}: the image has no repository name, so no signature; the trust policy requires signed images`,
        );
      return;
    }
    for (const name of names) {
      const rule = this.covers(name);
      if (!rule) continue;
      const digests = image.repoDigests.filter((d) => d.startsWith(`${name}@`)).map((d) => d.slice(name.length + 1));
      if (digests.length === 0)
        throw failedPrecondition(
          `trust: ${ref}: the image was not pulled from ${name} (built, loaded or tagged here), ` +
            'so nothing signed vouches for it; the trust policy requires signed images',
        );
      // a registry that cannot be reached does not stop containers while the last verified data is fresh
      const repo = await this.client.open(name, null, { rootKeys: rule.rootKeys }, { offline: true });
      let ok = false;
      for (const d of digests) if (await repo.isSigned(d)) ok = true;
      if (!ok)
        throw failedPrecondition(
          `trust: ${ref}: ${name}@${digests[0]!} is not (or no longer) signed by the publisher; ` +
            'the trust policy requires signed images',
        );
    }
  }
}
