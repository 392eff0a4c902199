/**
 * Image references as Docker normalizes them: `busybox` -> `busybox:latest`,
 * `docker.io/library/busybox:1` -> `busybox:1`, `host:5000/a/b` -> `host:5000/a/b:latest`,
 * `name@sha256:...` kept with its digest. (distribution/reference grammar, simplified.)
 */
import { invalidArgument } from '../base/errors.js';
import { registryHostOf } from '../spec/distribution.js';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export interface Reference {
  /** Normalized repository name, e.g. `busybox`, `registry:5000/team/app`. */
  name: string;
  tag?: string;
  digest?: string;
}

export function parseReference(s: string): Reference {
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw invalidArgument(`invalid reference format: ${s}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalidArgument(`invalid reference format: ${s}`);
  }
  const parts = rest.split('/');
  if (rest === '' || parts.some((p) => p === '')) throw invalidArgument(`invalid reference format: ${s}`);
  const domain = registryHostOf(rest);
  const hasDomain = domain !== null;
  if (hasDomain && !DOMAIN.test(domain)) throw invalidArgument(`invalid reference format: ${s}`);
  const path = hasDomain ? parts.slice(1) : parts;
  for (const p of path) {
    if (!COMPONENT.test(p)) {
      throw invalidArgument(
        p.toLowerCase() === p
          ? `invalid reference format: ${s}`
          : `invalid reference format: repository name (${rest}) must be lowercase`,
      );
    }
  }
  let name = rest;
  if (name.startsWith('docker.io/')) name = name.slice('docker.io/'.length);
  if (name.startsWith('index.docker.io/')) name = name.slice('index.docker.io/'.length);
  if (name.startsWith('library/') && name.split('/').length === 2) name = name.slice('library/'.length);
  const ref: Reference = { name };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `name:tag` with `latest` as the default tag (for references without a digest). */
export function normalizeTagged(s: string): string {
  const r = parseReference(s);
  if (r.digest) throw invalidArgument(`refusing to create a tag with a digest reference: ${s}`);
  return `${r.name}:${r.tag ?? 'latest'}`;
}

/** Whether `s` looks like an image id or id prefix (`sha256:` optional). */
export function idPrefix(s: string): string | null {
  const m = /^(?:sha256:)?([a-f0-9]{1,64})$/.exec(s);
  return m ? m[1]! : null;
}
