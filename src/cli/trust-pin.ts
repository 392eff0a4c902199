/**
 * Content trust's last step, shared by the full verification (commands/trust.ts, in the trust
 * bundle) and the cached one (trust-loader.ts, in the CLI's own bundle): with the signed digest of
 * a tag in hand, pull `name@digest` unless the daemon has it, and tag it. Output and requests are
 * the same whichever path found the digest.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { readText } from '../client/client.js';
import { TRUST_TAG } from '../spec/trust.js';
import { cachedTarget, repoDirOf } from '../trust/cache.js';
import type { Ctx } from './context.js';
import { splitTag } from './args.js';
import { authHeader, registryOf, render } from './progress.js';

const enc = encodeURIComponent;

/** `$BERTH_TRUST_DIR`, default ~/.berth/trust: keys, and under `tuf/` this user's pinned roots and verified metadata. */
export const trustDir = (): string => process.env['BERTH_TRUST_DIR'] ?? join(homedir(), '.berth', 'trust');

/** Where the trust client keeps a repository's verified metadata (TrustClient.repoDir, with the CLI's client options). */
export const tufDir = (): string => join(trustDir(), 'tuf');

/**
 * Content trust from this user's verified-metadata cache (../trust/cache.ts), when the registry
 * still serves the trust artifact that was verified last and all of it checks out now: `name@digest`
 * pulled and tagged as the full path does. Null (nothing done) when the full verification must run.
 */
export async function cachedTrustedReference(
  ctx: Ctx,
  ref: string,
  o: { pull: boolean; progressToStderr?: boolean },
): Promise<string | null> {
  if (ref.includes('@')) return null; // a digest reference: the full path checks it against every signed tag
  const { name, tag } = splitTag(ref);
  const dir = repoDirOf(tufDir(), name);
  const served = await servedDigest(ctx, name, TRUST_TAG);
  const t = served && cachedTarget(dir, served, tag ?? 'latest', Date.now());
  if (!t) return null;
  return pullPinned(o.progressToStderr ? { ...ctx, out: ctx.err } : ctx, name, tag, false, t.digest, o);
}

/** `name@digest`, pulled when `o.pull` and missing, tagged `name:tag` (`latest` when no tag was given). */
export async function pullPinned(
  ctx: Ctx,
  name: string,
  tag: string | undefined,
  byDigest: boolean,
  digest: string,
  o: { pull: boolean },
): Promise<string> {
  const pinned = `${name}@${digest}`;
  const have = await ctx.client.json('GET', `/images/${enc(pinned)}/json`).then(
    () => true,
    () => false,
  );
  if (!have && o.pull) {
    ctx.out(`Pull (1 of 1): ${name}:${tag ?? 'latest'}@${digest}\n`);
    const res = await ctx.client.stream('POST', `/images/create?fromImage=${enc(name)}&tag=${enc(digest)}`, {
      headers: authHeader(registryOf(name)),
    });
    await render(ctx, res, false);
  }
  if (tag !== undefined || !byDigest) {
    if (have || o.pull) {
      await ctx.client.json('POST', `/images/${enc(pinned)}/tag?repo=${enc(name)}&tag=${enc(tag ?? 'latest')}`);
      if (o.pull) ctx.out(`Tagging ${pinned} as ${name}:${tag ?? 'latest'}\n`);
    }
  }
  return pinned;
}

/** The digest the registry serves for `name:tag` now, asked through the daemon (GET /distribution); null when it cannot say. */
export async function servedDigest(ctx: Ctx, name: string, tag: string): Promise<string | null> {
  try {
    const res = await ctx.client.stream('GET', `/distribution/${name}:${enc(tag)}/json`, {
      headers: authHeader(registryOf(name)),
    });
    const v = JSON.parse(await readText(res)) as { Descriptor?: { digest?: unknown } };
    const d = v.Descriptor?.digest;
    return typeof d === 'string' ? d : null;
  } catch {
    return null;
  }
}
