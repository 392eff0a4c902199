/**
 * What checkpoint/ asks of whoever wires it (the engine), and nothing more: checkpoint/ sits below
 * engine/ and never imports it. Containers are seen through `ContainerView`; every change to a
 * container's record, its lifecycle or its events goes back through these functions, so the engine
 * keeps its state table, its store and its events.
 */
import type { Writable } from 'node:stream';
import type { Clock } from '../base/clock.js';
import type { ContainerConfig, HostConfig } from '../spec/engine-api.js';
import type { CheckpointRuntime, HostInfo } from '../runtime/types.js';

/** The container as checkpoint/ reads it (the engine's record has more). */
export interface ContainerView {
  readonly id: string;
  /** without the leading slash */
  readonly name: string;
  readonly imageId: string;
  readonly config: ContainerConfig;
  readonly hostConfig: HostConfig;
  readonly state: { readonly pid: number };
  /** the networks it joins (network id, what it asks of it), in order */
  readonly networks?: ReadonlyArray<readonly [string, { aliases: string[]; ipv4?: string; mac?: string }]>;
  readonly mounts?: ReadonlyArray<{ Type: string; Name?: string; Destination: string; anonymous?: boolean }>;
}

/** What `start --checkpoint` needs: the images and the addresses to keep (the engine's `Restore`). */
export interface RestorePlan {
  imagePath: string;
  workPath: string;
  tcpEstablished: boolean;
  addresses: Record<string, string>;
  /** post-copy: the page server the memory pages come from */
  pageServer?: string;
}

/** The CRIU-backed part of the runtime that checkpoint/ drives (runtime/ executes it): its checkpoint role. */
export type CheckpointRunner = Pick<CheckpointRuntime, 'host' | 'checkpoint' | 'checkpointLazy'>;

/** The operations of the status table checkpoint/ asks about (engine/state.ts). */
export type CheckpointOperation = 'checkpoint' | 'restore';

export interface CheckpointDeps {
  clock: Clock;
  runtime: CheckpointRunner;
  /** the container by id, name or unique id prefix; NotFound otherwise */
  get(ref: string): ContainerView;
  /** throws (Conflict, Docker's wording) when the container's status forbids `op` (the status table) */
  check(c: ContainerView, op: CheckpointOperation): void;
  containerDir(id: string): string;
  /** network id -> the IPv4 address the container has there now */
  addressesOf(id: string): Record<string, string>;
  /** sets and saves whether the container was stopped by hand (no restart policy brings it back) */
  setManuallyStopped(id: string, value: boolean): void;
  /** settles once the container's exit is recorded */
  exited(id: string): Promise<unknown>;
  /** keeps a post-copy checkpoint's page server until every page was fetched */
  servePages(id: string, checkpoint: string, served: { served: Promise<void>; cancel: () => Promise<void> }): void;
  /** ends a page server no one fetched from yet (the stopped process goes on); false when none serves it */
  cancelPageServer(id: string, checkpoint: string): Promise<boolean>;
  /** a container event ('checkpoint') */
  emit(action: string, id: string, attributes: Record<string, string>): void;
}

export interface VolumeView {
  Name: string;
  Driver: string;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** What export, stage and import need on top (archives: a container's config, layer and volumes travel). */
export interface ArchiveDeps extends CheckpointDeps {
  /** the daemon's root: staging happens in `<root>/tmp` (the same filesystem as the checkpoints) */
  root: string;
  /** the cgroup namespace create gives a container that asks for none (dockerd: host on cgroup v1, private on v2) */
  cgroupnsDefault: 'host' | 'private';
  /** a network by id or name: its id and name, or undefined */
  network(ref: string): { Id: string; Name: string } | undefined;
  volumes: {
    get(name: string): VolumeView;
    find(name: string): VolumeView | undefined;
    dataDir(name: string): string;
    create(o: { Name: string; Labels: Record<string, string> }): Promise<unknown>;
    /** removes a volume made by a failed import (forced; no error when it is gone) */
    remove(name: string): Promise<unknown>;
  };
  /** an image's id by id or name here, or null */
  imageId(ref: string): string | null;
  /** the container's writable layer as a layer tar (whiteouts as .wh. files) */
  exportUpper(id: string, out: Writable): Promise<void>;
  /** the container's writable layer replaced by a layer tar's contents */
  replaceUpper(id: string, tarPath: string): Promise<void>;
  /** creates a container from an Engine API create body; all or nothing */
  create(body: Record<string, unknown>, name: string): Promise<{ id: string }>;
  /** removes a container and its anonymous volumes (forced) */
  remove(id: string): Promise<unknown>;
  /** starts the container from a checkpoint */
  startRestored(id: string, restore: RestorePlan): Promise<unknown>;
}
