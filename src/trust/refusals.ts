/**
 * Why a repository's trust data is refused, in the field's words: the `TrustRefusal` every
 * verification failure becomes, and the diagnosis that turns tuf-js's error into one. tuf-js says
 * which check failed by its error's class; which role failed is read from the data (the registry's
 * files against what this host verified last), never from a message.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, MetadataKind, Key } from '@tufjs/models';
import { BadVersionError, ExpiredMetadataError, RuntimeError } from 'tuf-js/dist/error.js';
import type { Clock } from '../base/clock.js';
import { BerthError, errorMessage } from '../base/errors.js';
import { isObject } from '../base/json.js';
import type { RegistrySession } from '../distribution/client.js';
import { fetchFile, type BundleIndex } from './bundle.js';
import { DELEGATION, parseEnvelope, type Json } from './metadata.js';

/** Why trust data was refused, for callers that act on it (a publisher re-signs expired freshness). */
export type RefusalReason = 'expired' | 'rollback' | 'signatures' | 'root-chain' | 'unsigned' | 'other';

/**
 * A trust refusal: FailedPrecondition, so every client shows it as the daemon's error message;
 * `reason` and `role` say what failed, so no caller has to read the message.
 */
export class TrustRefusal extends BerthError {
  constructor(
    readonly reason: RefusalReason,
    readonly role: string | null,
    message: string,
    cause?: unknown,
  ) {
    super('FailedPrecondition', message, { cause });
  }
}

interface Envelope {
  signed: Json;
  signatures: Array<{ keyid: string }>;
}

export const refuse = (
  name: string,
  msg: string,
  cause?: unknown,
  reason: RefusalReason = 'other',
  role: string | null = null,
) => new TrustRefusal(reason, role, `trust: ${name}: ${msg}`, cause);

/** Key ids as a user reads them: their first 12 hex digits. */
export const short = (ks: string[]) => ks.map((k) => k.slice(0, 12)).join(', ');

/** The roles in the order the client workflow loads them (5.3 root .. 5.6 targets and delegations). */
const WALK = ['root', 'timestamp', 'snapshot', 'targets', DELEGATION] as const;
type Check = 'signatures' | 'version' | 'expiry';

export function readJson(path: string): Json | null {
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return isObject(v) ? v : null;
  } catch {
    return null;
  }
}

/** Key ids a document's `signed` part gives a role: root's roles, or a targets' delegation. */
export function trustedFor(dir: string, role: string): { keyids: string[]; threshold: number } | null {
  if (role === 'releases') {
    const t = readJson(join(dir, 'targets.json'))?.['signed'] as Json | undefined;
    const roles = (t?.['delegations'] as Json | undefined)?.['roles'];
    const r = Array.isArray(roles)
      ? (roles.find((x) => isObject(x) && x['name'] === role) as Json | undefined)
      : undefined;
    return r ? { keyids: r['keyids'] as string[], threshold: Number(r['threshold']) } : null;
  }
  const root = readJson(join(dir, 'root.json'))?.['signed'] as Json | undefined;
  const r = (root?.['roles'] as Record<string, { keyids: string[]; threshold: number }> | undefined)?.[role];
  return r ?? null;
}

/** A failed verification: the repository, this host's metadata directory, the registry's files. */
export interface Failing {
  name: string;
  dir: string;
  session: RegistrySession;
  index: BundleIndex;
  /** judges expiry (tuf-js judged it by the system time) */
  clock: Clock;
}

/**
 * Turns tuf-js's error into the refusal a user can act on. The error's class says which check
 * failed (tuf-js wraps a failed targets or delegation load in a RuntimeError, so that one may be
 * any); the role is found from the data, never from the message: the first role, in the workflow's order, that fails
 * such a check against what this host verified last.
 */
export async function explainFailure(o: Failing, e: unknown): Promise<Error> {
  const { name, dir, session: s, index: idx, clock } = o;
  if (e instanceof TrustRefusal) return e;
  if (e instanceof BerthError) return refuse(name, e.message, e);
  const text = errorMessage(e);
  // @tufjs/models' UnsignedMetadataError comes from the copy of the models tuf-js bundles (not
  // the one berth imports), so instanceof cannot see it: any other error gets the signature check
  const checks: Check[] =
    e instanceof ExpiredMetadataError
      ? ['expiry']
      : e instanceof BadVersionError
        ? ['version']
        : e instanceof RuntimeError
          ? ['signatures', 'version', 'expiry']
          : ['signatures'];
  for (const role of WALK) {
    const doc = await peek(s, idx, role === 'root' ? nextRootFile(dir) : `${role}.json`);
    if (!doc) continue;
    for (const check of checks) {
      if (check === 'signatures') {
        const v = validSignatures(dir, role, doc);
        if (v && v.valid < v.threshold) {
          return refuse(name, signatureProblem(dir, doc, role, v.valid, v.threshold), e, 'signatures', role);
        }
      } else if (check === 'version') {
        const have = Number(document(dir, role)?.['version'] ?? 0);
        if (role !== 'root' && have && Number(doc.signed['version']) < have) {
          const older = `the registry serves ${role} metadata older than what this host has already verified`;
          return refuse(name, `rollback refused: ${older} (${text})`, e, 'rollback', role);
        }
      } else if (Date.parse(String(doc.signed['expires'])) <= clock.now()) {
        if (role === 'root')
          return refuse(name, 'the root metadata has expired: the publisher must sign a new root', e, 'expired', role);
        const expired = `the registry serves expired ${role} metadata (expired ${String(doc.signed['expires'])})`;
        return refuse(name, `${expired}: frozen or replayed trust data; refusing`, e, 'expired', role);
      }
    }
  }
  if (e instanceof BadVersionError)
    return refuse(name, `its root metadata chain is broken (${text})`, e, 'root-chain', 'root');
  return refuse(name, `trust data does not verify: ${text}`, e);
}

/** The verified document's signed part this host holds for a role. */
function document(dir: string, role: string): Json | null {
  return (readJson(join(dir, `${role}.json`))?.['signed'] as Json | undefined) ?? null;
}

/** The root version after the newest this host trusts: the one a failed root chain stopped at. */
function nextRootFile(dir: string): string {
  return `${Number(document(dir, 'root')?.['version'] ?? 0) + 1}.root.json`;
}

/** How many of the keys this host trusts for a role signed a document, and the threshold. */
function validSignatures(dir: string, role: string, doc: Envelope): { valid: number; threshold: number } | null {
  const trusted = trustedFor(dir, role);
  const owner = role === DELEGATION ? document(dir, 'targets')?.['delegations'] : document(dir, 'root');
  const keys = isObject(owner) && isObject(owner['keys']) ? owner['keys'] : {};
  if (!trusted) return null;
  const kind =
    role === 'root'
      ? MetadataKind.Root
      : role === 'timestamp'
        ? MetadataKind.Timestamp
        : role === 'snapshot'
          ? MetadataKind.Snapshot
          : MetadataKind.Targets;
  let md: Metadata<never>;
  try {
    md = Metadata.fromJSON(
      kind as MetadataKind.Root,
      doc as unknown as Parameters<typeof Metadata.fromJSON>[1],
    ) as unknown as Metadata<never>;
  } catch {
    return { valid: 0, threshold: trusted.threshold };
  }
  let valid = 0;
  for (const id of trusted.keyids) {
    const k = keys[id];
    if (!isObject(k)) continue;
    try {
      Key.fromJSON(id, k as Parameters<typeof Key.fromJSON>[1]).verifySignature(md);
      valid++;
    } catch {
      /* not signed by this key */
    }
  }
  return { valid, threshold: trusted.threshold };
}

async function peek(s: RegistrySession, idx: BundleIndex, file: string): Promise<Envelope | null> {
  try {
    const b = await fetchFile(s, idx, file, 4 << 20);
    return b ? parseEnvelope(b, file) : null;
  } catch {
    return null;
  }
}

/** Which signatures a role's document carries versus which keys this host trusts for it. */
function signatureProblem(dir: string, doc: Envelope, role: string, valid: number, threshold: number): string {
  const trusted = trustedFor(dir, role)?.keyids ?? [];
  const seen = ((readJson(join(dir, 'keys-seen.json')) ?? {}) as Record<string, string[]>)[role] ?? [];
  const by = doc.signatures.map((x) => x.keyid);
  const revoked = by.filter((k) => !trusted.includes(k) && seen.includes(k));
  if (revoked.length)
    return (
      `${role} metadata is signed by revoked key ${short(revoked)}; ` +
      `it needs ${threshold} signature(s) by keys trusted now (${short(trusted)}), has ${valid}`
    );
  const unknown = by.filter((k) => !trusted.includes(k));
  if (valid > 0 || unknown.length === 0)
    return `${role} metadata is signed by ${valid} of the ${threshold} keys its threshold requires`;
  return `${role} metadata is signed by key(s) not trusted for ${role} (${short(unknown)}): not the publisher's`;
}
