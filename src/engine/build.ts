/**
 * Build verbs: `POST /build` and `/build/prune` through the builder (which pulls with the one
 * pull of ./images.ts). The engine emits the `tag` events of a build's names.
 */
import type { Readable } from 'node:stream';
import { isObject } from '../base/json.js';
import type { Builder, BuildOutput, BuildRequest, StepEvent } from '../builder/builder.js';
import { parseReference } from '../image/reference.js';
import { registryHostOf } from '../spec/distribution.js';
import type { Credentials, ImageRecord } from './images.js';
import type { Engine } from './engine.js';

export type { BuildOutput, BuildRequest, StepEvent };

/**
 * X-Registry-Config's table ({registry: {username, password}}) as the build's credentials: the
 * entry whose host is the reference's registry (any docker.io name for Docker Hub's images).
 */
export function registryCredentials(table: Record<string, unknown>): (ref: string) => Credentials | null {
  return (ref) => {
    const host = registryHostOf(parseReference(ref).name) ?? 'docker.io';
    for (const [k, c] of Object.entries(table)) {
      const key = k.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
      const matches = key === host || (host === 'docker.io' && /(^|\.)docker\.io$/.test(key));
      if (matches && isObject(c) && typeof c['username'] === 'string' && typeof c['password'] === 'string')
        return { username: c['username'], password: c['password'] };
    }
    return null;
  };
}

export class BuildVerbs {
  constructor(
    private readonly e: Engine,
    private readonly builder: Builder,
  ) {}

  /** Builds the context tar `input`; the image's names are tagged (and reported as events). */
  async build(input: Readable, req: BuildRequest, out: BuildOutput): Promise<ImageRecord> {
    const img = await this.builder.buildFromTar(input, req, out);
    for (const t of req.tags) this.e.events.emit('image', 'tag', img.id, { name: t });
    return img;
  }

  prune(): Promise<{ entries: number; freed: number }> {
    return this.builder.prune();
  }
}
