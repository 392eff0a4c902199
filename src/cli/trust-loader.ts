/**
 * The trust commands live in their own module (tuf-js and the signing code), loaded on first use:
 * the bundled CLI (dist/berth.cjs) does not carry them, so a CLI that never verifies pays nothing.
 */
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Ctx } from './context.js';
import { cachedTrustedReference } from './trust-pin.js';

type TrustModule = typeof import('./commands/trust.js');

let loaded: Promise<TrustModule> | null = null;

export function loadTrust(): Promise<TrustModule> {
  if (!loaded) {
    const here = dirname(realpathSync(process.argv[1] ?? '.'));
    // bin/berth: the trust bundle (dist/trust.cjs); dist/src/cmd/berth.js (unbundled): its sibling module
    const candidates = [join(here, '..', 'dist', 'trust.cjs'), join(here, '..', 'cli', 'commands', 'trust.js')];
    const path = candidates.find((p) => existsSync(p)) ?? candidates[0]!;
    // the bundle is CommonJS and is required: bin/berth runs the CLI from V8's code cache, where a
    // dynamic import() has no loader to call (Node 20); the unbundled module is ESM and imported
    loaded = path.endsWith('.cjs')
      ? Promise.resolve().then(() => createRequire(path)(path) as TrustModule)
      : (import(pathToFileURL(path).href) as Promise<TrustModule>);
  }
  return loaded;
}

/**
 * A tag resolved through verified trust data (commands/trust.ts `trustedReference`): from the
 * verified-metadata cache when it can answer (no trust bundle loaded, no metadata fetched), else
 * by the full verification.
 */
export async function trustedReference(
  ctx: Ctx,
  ref: string,
  o: { pull: boolean; progressToStderr?: boolean },
): Promise<string> {
  return (await cachedTrustedReference(ctx, ref, o)) ?? (await loadTrust()).trustedReference(ctx, ref, o);
}

/** BERTH_CONTENT_TRUST=1 (or DOCKER_CONTENT_TRUST=1): tags resolve only through signed metadata. */
export const trustOn = (): boolean =>
  ['1', 'true'].includes(
    (process.env['BERTH_CONTENT_TRUST'] ?? process.env['DOCKER_CONTENT_TRUST'] ?? '').toLowerCase(),
  );

const USAGE = `Usage:  berth trust COMMAND

Sign images and manage trust (TUF metadata travelling with the image).

Commands:
  sign IMAGE:TAG              push and sign a tag
  inspect [--pretty] IMAGE    verified signatures, signers and keys
  revoke IMAGE[:TAG]          remove the signatures of a tag (or all)
  signer add --key FILE [--threshold N] NAME REPO
  signer remove NAME REPO
  key generate [--root] [--type ed25519|ecdsa] NAME
  key list | key export KEYID [-o FILE] | key import [--root] FILE
  key rotate REPO root|targets|snapshot|timestamp
`;

export async function trustCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const verb = argv.shift();
  const m = await loadTrust();
  const groups: Record<string, Record<string, (ctx: Ctx, a: string[]) => Promise<void>>> = {
    signer: m.signer,
    key: m.key,
  };
  const single: Record<string, (ctx: Ctx, a: string[]) => Promise<void>> = {
    sign: m.sign,
    inspect: m.inspect,
    revoke: m.revoke,
  };
  const cmd = verb ? (groups[verb] ? groups[verb][argv.shift() ?? ''] : single[verb]) : undefined;
  if (!cmd) {
    ctx.out(USAGE);
    if (verb && verb !== '--help') throw new Error(`berth trust: unknown command ${verb}`);
    return;
  }
  await cmd(ctx, argv);
}
