/**
 * The engine's checkpoint verbs: thin, with the names and signatures the api routes call. The work
 * is in checkpoint/ (CRIU checkpoints, export archives, import review, restore plans), which sees
 * the engine only through the deps built here (`checkpointDeps`): the state checks go through the
 * status table (state.ts: 'checkpoint', 'restore'), record changes through the store, events
 * through the bus.
 */
import type { Readable, Writable } from 'node:stream';
import type { ArchiveDeps } from '../checkpoint/deps.js';
import * as archive from '../checkpoint/archive.js';
import * as verbs from '../checkpoint/checkpoints.js';
import * as importing from '../checkpoint/import.js';
import * as store from '../checkpoint/store.js';
import type { Engine } from './engine.js';
import type { ContainerRecord, Namespace } from './record.js';
import type { Restore } from './lifecycle.js';

export type { CheckpointMeta } from '../checkpoint/store.js';
export type { ExportOptions } from '../checkpoint/archive.js';
export { hostAccessOf } from '../checkpoint/import.js';

/** What checkpoint/ may ask of the engine (and nothing else of it). */
export function checkpointDeps(engine: Engine, ns: Namespace = ''): ArchiveDeps {
  const imageId = (ref: string): string | null => {
    try {
      return engine.images.get(ref).id;
    } catch {
      return null;
    }
  };
  return {
    clock: engine.clock,
    runtime: engine.runtime,
    root: engine.root,
    get: (ref) => engine.store.get(ref, ns),
    check: (c, op) => engine.check(engine.store.get(c.id, ns), op),
    containerDir: (id) => engine.containerDir(id),
    addressesOf: (id) =>
      Object.fromEntries(engine.networks.endpoints({ containerId: id }).map((e) => [e.networkId, e.ip])),
    setManuallyStopped: (id, value) => {
      const rec = engine.store.get(id, ns);
      rec.manuallyStopped = value;
      engine.store.save(rec);
    },
    exited: (id) => engine.lifecycle.exitPromise(id),
    servePages: (id, name, served) => engine.servePages(id, name, served),
    cancelPageServer: (id, name) => engine.cancelPageServer(id, name),
    emit: (action, id, attributes) => engine.events.emit('container', action, id, attributes),
    network: (ref) => engine.networks.find(ref),
    volumes: {
      get: (name) => engine.volumes.get(name),
      find: (name) => engine.volumes.find(name),
      dataDir: (name) => engine.volumes.dataDir(name),
      create: (o) => engine.volumes.create(o),
      remove: (name) => engine.volumes.remove(name, [], true),
    },
    imageId,
    exportUpper: (id, out) => engine.snapshots.packDiff(id, out),
    replaceUpper: (id, tarPath) => engine.replaceUpper(id, tarPath),
    cgroupnsDefault: engine.runtime.host().cgroupVersion === 2 ? 'private' : 'host',
    create: (body, name) => engine.create(body, name),
    remove: (id) => engine.remove(id, { force: true, volumes: true }),
    startRestored: (id, restore) => engine.lifecycle.start(engine.get(id), restore),
  };
}

export function checkpointDir(engine: Engine, rec: ContainerRecord, dir?: string | null): string {
  return store.checkpointDir(checkpointDeps(engine), rec, dir);
}

/** POST /containers/{id}/checkpoints (checkpoint/checkpoints.ts). */
export function createCheckpoint(
  engine: Engine,
  ref: string,
  o: verbs.CreateOptions,
): Promise<{ pageServer?: string }> {
  return verbs.createCheckpoint(checkpointDeps(engine), ref, o);
}

export function listCheckpoints(engine: Engine, ref: string, dir?: string | null): Promise<Array<{ Name: string }>> {
  return verbs.listCheckpoints(checkpointDeps(engine), ref, dir);
}

export function removeCheckpoint(engine: Engine, ref: string, name: string, dir?: string | null): Promise<void> {
  return verbs.removeCheckpoint(checkpointDeps(engine), ref, name, dir);
}

/** What `start --checkpoint` needs: the images (checked) and the addresses to keep. */
export function restoreOf(engine: Engine, rec: ContainerRecord, name: string, dir?: string | null): Promise<Restore> {
  return verbs.restoreOf(checkpointDeps(engine), rec, name, dir);
}

export function exportCheckpoint(
  engine: Engine,
  ref: string,
  name: string,
  out: Writable,
  o: archive.ExportOptions = {},
): Promise<void> {
  return archive.exportCheckpoint(checkpointDeps(engine), ref, name, out, o);
}

export function stageCheckpoint(engine: Engine, input: Readable): Promise<string> {
  return archive.stageCheckpoint(checkpointDeps(engine), input);
}

export function importCheckpoint(
  engine: Engine,
  input: Readable,
  o: { name?: string; start: boolean; stage?: string; hostAccess?: boolean; pull: (ref: string) => Promise<unknown> },
): Promise<{ id: string; name: string }> {
  return importing.importCheckpoint(checkpointDeps(engine), input, o);
}
