import { createHash } from 'node:crypto';
import { invalidArgument } from './errors.js';

/** `sha256:<64 hex>`; only sha256 is produced, sha512 is accepted when parsing. */
export type Digest = string & { readonly __brand: 'Digest' };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;

export function parseDigest(s: string): Digest {
  if (!DIGEST_RE.test(s)) throw invalidArgument(`invalid digest: ${s}`);
  return s as Digest;
}

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** The hex part of a digest. */
export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}
