/**
 * The engine as front doors see it: one verb per operation, grouped by resource. A front door
 * (api/, later cri/) is given a `Verbs` and nothing else: the services behind it (runtime,
 * stores, network and volume managers, the event bus) are not reachable through it. A verb owns
 * its state checks (./state.ts) and emits its events; a route only parses, calls one verb and
 * renders.
 */
import type { Clock } from '../base/clock.js';
import { lazy } from '../base/lazy.js';
import type { Builder } from '../builder/builder.js';
import { BuildVerbs } from './build.js';
import type { BuildKitVerbs } from './buildkit.js';
import { CheckpointVerbs } from './checkpoint-verbs.js';
import { ContainerFiles } from './container-files.js';
import { ContainerVerbs } from './container-ops.js';
import { ContainerStdio } from './container-stdio.js';
import { Execs } from './exec.js';
import { ImageVerbs } from './images.js';
import { K8sVerbs } from './k8s.js';
import { PodVerbs } from './pods.js';
import { LegacyVerbs } from './legacy.js';
import { NetworkVerbs } from './networks.js';
import { SystemVerbs } from './system.js';
import { VolumeVerbs } from './volumes.js';
import type { Engine } from './engine.js';

export class Verbs {
  readonly containers: ContainerVerbs;
  readonly stdio: ContainerStdio;
  readonly files: ContainerFiles;
  readonly checkpoints: CheckpointVerbs;
  readonly execs: Execs;
  readonly images: ImageVerbs;
  readonly build: BuildVerbs;
  /** BuildKit's verbs: their modules (gRPC, the protobuf definitions) load on the first BuildKit request */
  readonly buildkit: () => Promise<BuildKitVerbs>;
  readonly networks: NetworkVerbs;
  readonly volumes: VolumeVerbs;
  readonly system: SystemVerbs;
  /** What API versions below 1.24 do differently (start with a HostConfig, copy). */
  readonly legacy: LegacyVerbs;
  /** The CRI's containers (the k8s.io namespace), for cri/. */
  readonly k8s: K8sVerbs;
  /** The CRI's pod sandboxes: infra container and pod network, run/stop/remove as one verb each. */
  readonly pods: PodVerbs;

  /** `builder`: the builder service, made on the first build (berthd loads its modules then) */
  constructor(engine: Engine, o: { builder: () => Promise<Builder>; clock: Clock }) {
    this.containers = new ContainerVerbs(engine);
    this.stdio = new ContainerStdio(engine, o.clock);
    this.files = new ContainerFiles(engine);
    this.checkpoints = new CheckpointVerbs(engine);
    this.execs = new Execs(engine);
    this.images = new ImageVerbs(engine);
    this.build = new BuildVerbs(engine, o.builder);
    this.buildkit = lazy(async () => {
      const [{ BuildKitVerbs }, builder] = await Promise.all([import('./buildkit.js'), o.builder()]);
      return new BuildKitVerbs(engine, builder, o.clock);
    });
    this.networks = new NetworkVerbs(engine);
    this.volumes = new VolumeVerbs(engine);
    this.system = new SystemVerbs(engine);
    this.legacy = new LegacyVerbs(engine, this.containers, this.files);
    this.k8s = new K8sVerbs(engine);
    this.pods = new PodVerbs(this.k8s);
  }
}
