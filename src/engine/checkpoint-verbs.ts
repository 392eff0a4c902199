/**
 * Checkpoint verbs as a front door calls them: create, list, remove, export, stage, import. They
 * are checkpoint.ts's, bound to the engine; an import's images come through the one pull.
 */
import type { Readable, Writable } from 'node:stream';
import {
  createCheckpoint,
  exportCheckpoint,
  importCheckpoint,
  listCheckpoints,
  removeCheckpoint,
  stageCheckpoint,
  type ExportOptions,
} from './checkpoint.js';
import { pullImage } from './images.js';
import { checkpointToFile } from './k8s-checkpoint.js';
import type { Engine } from './engine.js';

export type { ExportOptions };
export type CreateCheckpoint = Parameters<typeof createCheckpoint>[2];

export class CheckpointVerbs {
  constructor(private readonly e: Engine) {}

  create(ref: string, o: CreateCheckpoint): Promise<{ pageServer?: string }> {
    return createCheckpoint(this.e, ref, o);
  }

  list(ref: string, dir: string | null): Promise<Array<{ Name: string }>> {
    return listCheckpoints(this.e, ref, dir);
  }

  remove(ref: string, name: string, dir: string | null): Promise<void> {
    return removeCheckpoint(this.e, ref, name, dir);
  }

  /** Checks the container and its checkpoints exist (NotFound before a stream starts), then exports into `open()`. */
  async export(
    ref: string,
    name: string,
    o: ExportOptions & { dir: string | null },
    open: () => Writable,
  ): Promise<void> {
    const rec = this.e.get(ref);
    await listCheckpoints(this.e, rec.id, o.dir);
    await exportCheckpoint(this.e, rec.id, name, open(), o);
  }

  /** The CRI's CheckpointContainer: a running k8s.io container's archive at `location`, the container left running. */
  toFile(id: string, location: string, signal: AbortSignal): Promise<void> {
    return checkpointToFile(this.e, id, location, signal);
  }

  stage(input: Readable): Promise<string> {
    return stageCheckpoint(this.e, input);
  }

  import(
    input: Readable,
    o: { name?: string; stage?: string; start: boolean; hostAccess: boolean },
  ): Promise<{ id: string; name: string }> {
    return importCheckpoint(this.e, input, { ...o, pull: (ref) => pullImage(this.e, ref, { creds: null }) });
  }
}
