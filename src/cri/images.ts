/**
 * The CRI's ImageService over the engine's one image store (the Docker API's images are the CRI's
 * and the other way round) and its one pull path.
 */
import { invalidArgument, isBerthError } from '../base/errors.js';
import type { ImageVerbs, ImageRecord, Credentials } from '../engine/images.js';
import { unimplemented } from './grpc.js';
import type { AuthConfig, ImageSpec } from './types.js';

function imageOf(img: ImageRecord): object {
  const user = img.config.config?.User ?? '';
  const uid = /^\d+(:|$)/.test(user) ? { value: Number(user.split(':')[0]) } : null;
  return {
    id: img.id,
    repo_tags: img.repoTags,
    repo_digests: img.repoDigests,
    size: Math.max(1, img.size),
    uid,
    username: uid ? '' : user.split(':')[0],
    spec: { image: img.id, annotations: {} },
    pinned: img.repoTags.some((t) => t.startsWith('localhost/berth/pause:')),
  };
}

/** The registry credentials of a PullImage (username/password, or `auth` as base64 user:password). */
export function credsOf(a: AuthConfig | null): Credentials | null {
  if (!a) return null;
  if (a.identity_token || a.registry_token)
    throw unimplemented('token auth (identity_token, registry_token)', 'berth pulls with a username and password');
  if (a.username || a.password) return { username: a.username, password: a.password };
  if (a.auth) {
    const text = Buffer.from(a.auth, 'base64').toString('utf8');
    const cut = text.indexOf(':');
    if (cut < 0) throw invalidArgument('auth is not base64 of username:password');
    return { username: text.slice(0, cut), password: text.slice(cut + 1) };
  }
  return null;
}

export class Images {
  constructor(private readonly images: ImageVerbs) {}

  private find(ref: string): ImageRecord | null {
    try {
      return this.images.get(ref);
    } catch (e) {
      if (isBerthError(e, 'NotFound') || isBerthError(e, 'InvalidArgument')) return null;
      throw e;
    }
  }

  list(filter: { image: ImageSpec | null } | null): object {
    const want = filter?.image?.image;
    const all = want ? [this.find(want)].filter((i): i is ImageRecord => i !== null) : this.images.list({});
    return { images: all.map(imageOf) };
  }

  status(spec: ImageSpec | null, verbose: boolean): object {
    if (!spec?.image) throw invalidArgument('image.image is required');
    const img = this.find(spec.image);
    if (!img) return { image: null, info: {} };
    return { image: imageOf(img), info: verbose ? { info: JSON.stringify({ config: img.config }) } : {} };
  }

  async pull(spec: ImageSpec | null, auth: AuthConfig | null): Promise<object> {
    if (!spec?.image) throw invalidArgument('image.image is required');
    const creds = credsOf(auth);
    await this.images.pull(spec.image, '', { creds, platform: '', progress: () => undefined });
    return { image_ref: this.images.get(spec.image).id };
  }

  /** Idempotent: an image already gone is no error. An image a container uses is refused (FAILED_PRECONDITION). */
  async remove(spec: ImageSpec | null): Promise<object> {
    if (!spec?.image) throw invalidArgument('image.image is required');
    const img = this.find(spec.image);
    if (!img) return {};
    // every name of it goes (the CRI removes an image, not a tag)
    await this.images.remove(img.id, { force: img.repoTags.length > 1, noPrune: false });
    return {};
  }

  fsInfo(): object {
    const now = Date.now() * 1e6;
    return {
      image_filesystems: [
        {
          timestamp: now,
          fs_id: { mountpoint: this.images.layersDir },
          used_bytes: { value: this.images.diskUsage().layersSize },
          inodes_used: null,
        },
      ],
      container_filesystems: [],
    };
  }
}
