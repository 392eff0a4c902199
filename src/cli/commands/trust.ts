/**
 * `berth trust ...` and content trust for pull/run/create/push (BERTH_CONTENT_TRUST=1, or
 * DOCKER_CONTENT_TRUST=1). Signing happens here, on the publisher's machine, with keys that never
 * reach a daemon or a registry; the signed metadata goes straight to the registry (as the docker
 * CLI spoke to Notary). This module is loaded only when trust is used (see trust-loader.ts).
 *
 * Files: `$BERTH_TRUST_DIR` (default ~/.berth/trust): `private/` sealed daily keys, `tuf/` this
 * user's pinned roots and verified metadata; `$BERTH_TRUST_ROOT_DIR` (default
 * `$BERTH_TRUST_DIR/root-keys`) the root keys — keep that directory offline: only creating a
 * repository and rotating keys read it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { systemClock } from '../../base/clock.js';
import { invalidArgument } from '../../base/errors.js';
import { generateKey, readPublicKeyFile, KeyStore, keyIdOf, type KeyType, type Passphrases } from '../../trust/keys.js';
import { DEFAULT_EXPIRIES, TOP_ROLES, type TargetInfo, type TopRole } from '../../trust/metadata.js';
import { Publisher } from '../../trust/publisher.js';
import { TrustClient } from '../../trust/verify.js';
import { UsageError, bool, parseArgs, splitTag, str } from '../args.js';
import { ExitError, type Ctx } from '../context.js';
import { authHeader, credentialsFor, registryOf, render } from '../progress.js';
import { pullPinned, trustDir, tufDir } from '../trust-pin.js';

const rootDir = () => process.env['BERTH_TRUST_ROOT_DIR'] ?? join(trustDir(), 'root-keys');

/** Passphrases from the environment (BERTH_*, or Docker's names), else a prompt on the terminal. */
const passphrases: Passphrases = {
  async get(kind, label, confirm) {
    const env =
      kind === 'root'
        ? ['BERTH_TRUST_ROOT_PASSPHRASE', 'DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE']
        : ['BERTH_TRUST_PASSPHRASE', 'DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE'];
    for (const e of env) if (process.env[e]) return process.env[e]!;
    if (!process.stdin.isTTY)
      throw invalidArgument(
        `a passphrase is needed for the ${kind} key "${label}": set ${env[0]} or run on a terminal`,
      );
    const a = await prompt(`Enter passphrase for ${kind} key "${label}": `);
    if (confirm && (await prompt('Repeat passphrase: ')) !== a) throw invalidArgument('passphrases do not match');
    if (confirm && a.length < 8) throw invalidArgument('a passphrase needs at least 8 characters');
    return a;
  },
};

/** One line from the terminal, not echoed. */
async function prompt(q: string): Promise<string> {
  process.stderr.write(q);
  const rl = createInterface({ input: process.stdin, terminal: true, output: undefined });
  process.stdin.setRawMode?.(false);
  try {
    for await (const line of rl) return line;
    return '';
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

function keyStore(): KeyStore {
  return new KeyStore(trustDir(), rootDir(), passphrases);
}

const creds = (name: string) => credentialsFor(registryOf(name));

function client(): TrustClient {
  return new TrustClient(tufDir());
}

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s);
  if (!m) throw new UsageError(`invalid duration ${s} (e.g. 30s, 15m, 12h, 7d)`);
  return Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 'ms']!;
}

/** A reference's repository and tag; refuses digests (trust signs tags). */
function named(ref: string, needTag: boolean): { name: string; tag: string | undefined } {
  if (ref.includes('@')) throw new UsageError(`${ref}: trust works on tags, not digests`);
  const { name, tag } = splitTag(ref);
  if (needTag && !tag) return { name, tag: 'latest' };
  return { name, tag };
}

/** The publisher's workflow (../../trust/publisher.ts) with this user's keys, roots and credentials. */
function publisher(ctx: Ctx): Publisher {
  const type = process.env['BERTH_TRUST_KEY_TYPE'];
  const rootKey = process.env['BERTH_TRUST_ROOT_KEY'];
  return new Publisher({
    keys: keyStore(),
    verifier: client(),
    credentials: creds,
    clock: systemClock,
    note: (text) => ctx.err(text),
    ...(type ? { keyType: type as KeyType } : {}),
    ...(rootKey ? { rootKey } : {}),
  });
}

/** Pushes an image through the daemon; the pushed manifest's digest and size. */
async function pushImage(ctx: Ctx, name: string, tag: string): Promise<TargetInfo> {
  const res = await ctx.client.stream('POST', `/images/${name}/push?tag=${encodeURIComponent(tag)}`, {
    headers: authHeader(registryOf(name)),
  });
  let info: TargetInfo | null = null;
  await render(ctx, res, false, (aux) => {
    if (typeof aux['Digest'] === 'string')
      info = {
        digest: aux['Digest'],
        size: Number(aux['Size']),
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
      };
  });
  if (!info) throw new ExitError(1, `the daemon did not report the digest of ${name}:${tag}`);
  return info;
}

const enc = encodeURIComponent;

// --- commands ---------------------------------------------------------------------------------

export async function sign(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { 'timestamp-expiry': { type: 'string' }, local: { type: 'bool' } });
  if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: IMAGE:TAG');
  const { name, tag } = named(p.args[0]!, true);
  const ttl = str(p, 'timestamp-expiry');
  const expiries = { ...DEFAULT_EXPIRIES, ...(ttl ? { timestamp: parseDuration(ttl) } : {}) };
  const { info, role } = await publisher(ctx).sign(name, tag!, () => pushImage(ctx, name, tag!), expiries);
  ctx.out(`Signed ${name}:${tag} ${info.digest} in ${role}\n`);
}

export async function revoke(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {});
  if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: IMAGE[:TAG]');
  const { name, tag } = named(p.args[0]!, false);
  const tags = await publisher(ctx).revoke(name, tag);
  ctx.out(`Revoked the signatures of ${tags.map((t) => `${name}:${t}`).join(', ')}\n`);
}

export async function inspect(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { pretty: { type: 'bool' } });
  if (p.args.length < 1) throw new UsageError('requires at least 1 argument: IMAGE[:TAG]');
  const out: unknown[] = [];
  for (const ref of p.args) {
    const { name, tag } = named(ref, false);
    const repo = await client().open(name, creds(name));
    const tags = await repo.signedTags();
    const root = repo.document('root')!;
    const targets = repo.document('targets')!;
    const ts = repo.document('timestamp');
    const rolesOf = root['roles'] as Record<string, { keyids: string[]; threshold: number }>;
    const dl = ((targets['delegations'] as { roles?: Array<Record<string, unknown>> } | undefined)?.roles ?? []).find(
      (r) => r['name'] === 'releases',
    );
    const signers = Object.entries((dl?.['x-berth-signers'] ?? {}) as Record<string, string>).map(([n, k]) => ({
      Name: n,
      Keys: [{ ID: k }],
    }));
    out.push({
      Name: ref,
      SignedTags: [...tags]
        .filter(([t]) => !tag || t === tag)
        .map(([t, v]) => ({
          SignedTag: t,
          Digest: v.digest.replace(/^sha256:/, ''),
          Signers: [v.role === 'targets' ? 'Repo Admin' : 'releases'],
        })),
      Signers: signers,
      Threshold: dl ? Number(dl['threshold']) : undefined,
      AdministrativeKeys: [
        { Name: 'Root', Keys: rolesOf['root']!.keyids.map((ID) => ({ ID })) },
        { Name: 'Repository', Keys: rolesOf['targets']!.keyids.map((ID) => ({ ID })) },
        { Name: 'Snapshot', Keys: rolesOf['snapshot']!.keyids.map((ID) => ({ ID })) },
        { Name: 'Timestamp', Keys: rolesOf['timestamp']!.keyids.map((ID) => ({ ID })) },
      ],
      RootPinned: repo.pin.mode === 'policy' ? 'by the trust policy' : `trust on first use, ${repo.pin.at}`,
      Versions: { root: root['version'], targets: targets['version'], timestamp: ts?.['version'] },
      Expires: { root: root['expires'], timestamp: ts?.['expires'] },
    });
  }
  if (!bool(p, 'pretty')) {
    ctx.out(`${JSON.stringify(out, null, 4)}\n`);
    return;
  }
  for (const r of out as Array<Record<string, unknown>>) {
    ctx.out(`\nSignatures for ${String(r['Name'])}\n\nSIGNED TAG\tDIGEST\tSIGNERS\n`);
    for (const t of r['SignedTags'] as Array<Record<string, unknown>>)
      ctx.out(`${String(t['SignedTag'])}\t${String(t['Digest'])}\t${(t['Signers'] as string[]).join(', ')}\n`);
    ctx.out(`\nRoot pinned: ${String(r['RootPinned'])}\n`);
    for (const k of r['AdministrativeKeys'] as Array<{ Name: string; Keys: Array<{ ID: string }> }>)
      ctx.out(`${k.Name} key:\t${k.Keys.map((x) => x.ID).join(', ')}\n`);
  }
}

export const signer = {
  async add(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { key: { type: 'string' }, threshold: { type: 'string' } });
    if (p.args.length !== 2 || !str(p, 'key'))
      throw new UsageError('usage: berth trust signer add --key PUBLIC-KEY-FILE [--threshold N] NAME REPOSITORY');
    const [who, repo] = p.args as [string, string];
    const pub = readPublicKeyFile(str(p, 'key')!);
    const threshold = str(p, 'threshold') !== undefined ? Number(str(p, 'threshold')) : undefined;
    if (threshold !== undefined && (!Number.isInteger(threshold) || threshold < 1)) {
      throw new UsageError('--threshold must be a positive integer');
    }
    const now = await publisher(ctx).addSigner(named(repo, false).name, who, pub, threshold);
    ctx.out(`Added ${who} (${keyIdOf(pub).slice(0, 12)}) as a signer of ${repo}; threshold ${now}\n`);
  },
  async remove(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, {});
    if (p.args.length !== 2) throw new UsageError('usage: berth trust signer remove NAME REPOSITORY');
    const [who, repo] = p.args as [string, string];
    const id = await publisher(ctx).removeSigner(named(repo, false).name, who);
    ctx.out(`Removed ${who} (key ${id.slice(0, 12)} revoked) from the signers of ${repo}\n`);
  },
};

export const key = {
  async generate(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { root: { type: 'bool' }, type: { type: 'string' }, dir: { type: 'string' } });
    if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: NAME');
    const type = (str(p, 'type') ?? 'ed25519') as KeyType;
    if (type !== 'ed25519' && type !== 'ecdsa') throw new UsageError('--type is ed25519 or ecdsa');
    const k = generateKey(type, p.args[0]!);
    await keyStore().add(k, bool(p, 'root'));
    const pubFile = join(str(p, 'dir') ?? '.', `${p.args[0]!}.pub`);
    writeFileSync(pubFile, `${JSON.stringify(k.public, null, 2)}\n`);
    ctx.out(`Generated ${type} key ${k.keyid}\nPublic key: ${pubFile}\n`);
  },
  async list(ctx: Ctx): Promise<void> {
    ctx.out('KEY ID\tNAME\tKIND\n');
    for (const k of keyStore().list()) ctx.out(`${k.keyid}\t${k.label}\t${k.root ? 'root (offline)' : 'signing'}\n`);
  },
  async export(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { output: { type: 'string', short: 'o' } });
    if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: KEY-ID');
    const text = keyStore().sealedText(p.args[0]!);
    if (str(p, 'output')) writeFileSync(str(p, 'output')!, text, { mode: 0o600 });
    else ctx.out(text);
  },
  async import(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { root: { type: 'bool' } });
    if (p.args.length !== 1) throw new UsageError('requires exactly 1 argument: FILE');
    const r = await keyStore().importSealed(readFileSync(p.args[0]!, 'utf8'), bool(p, 'root'), p.args[0]!, async () => {
      if (process.env['BERTH_TRUST_IMPORT_PASSPHRASE']) return process.env['BERTH_TRUST_IMPORT_PASSPHRASE'];
      if (!process.stdin.isTTY)
        throw invalidArgument('the key is sealed with another passphrase: set BERTH_TRUST_IMPORT_PASSPHRASE to it');
      return prompt('Passphrase the key was exported with: ');
    });
    ctx.out(`Imported key ${r.keyid} (${r.label})\n`);
  },
  /** A role's key replaced by a new one; root re-signed (by the old root keys too, for root). */
  async rotate(ctx: Ctx, argv: string[]): Promise<void> {
    const p = parseArgs(argv, { type: { type: 'string' } });
    if (p.args.length !== 2 || !TOP_ROLES.includes(p.args[1] as TopRole))
      throw new UsageError(`usage: berth trust key rotate REPOSITORY ${TOP_ROLES.join('|')}`);
    const name = named(p.args[0]!, false).name;
    const role = p.args[1] as TopRole;
    const r = await publisher(ctx).rotate(name, role, (str(p, 'type') ?? 'ed25519') as KeyType);
    const old = r.old.map((x) => x.slice(0, 12)).join(', ');
    ctx.out(`Rotated the ${role} key of ${name}: ${old} -> ${r.keyid.slice(0, 12)} (root version ${r.rootVersion})\n`);
  },
};

// --- content trust for pull/run/push -----------------------------------------------------------

/**
 * A tag resolved through verified trust data: `name@digest`, pulled if missing and tagged
 * `name:tag`, as the docker CLI's content trust does. A digest reference is checked to be signed.
 */
export async function trustedReference(
  ctx: Ctx,
  ref: string,
  o: { pull: boolean; progressToStderr?: boolean },
): Promise<string> {
  if (o.progressToStderr) ctx = { ...ctx, out: ctx.err }; // run/create: stdout is the container's
  const at = ref.indexOf('@');
  const { name, tag } = at >= 0 ? { name: ref.slice(0, at), tag: undefined } : splitTag(ref);
  const repo = await client().open(name, creds(name));
  let digest: string;
  if (at >= 0) {
    digest = ref.slice(at + 1);
    if (!(await repo.isSigned(digest))) throw new ExitError(1, `trust: ${name}: ${digest} is not a signed target`);
  } else digest = (await repo.resolve(tag ?? 'latest')).digest;
  return pullPinned(ctx, name, tag, at >= 0, digest, o);
}
