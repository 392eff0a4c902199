/**
 * berthd's CRI endpoint: runtime.v1 RuntimeService (runtime-service.ts) and ImageService
 * (image-service.ts) over gRPC (@grpc/grpc-js) on a unix socket (mode 0600: root's alone, as
 * containerd's). A front door like api/: each handler parses, calls the engine's verbs (Verbs.k8s,
 * Verbs.images) and renders.
 */
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { Server, ServerCredentials, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Verbs } from '../engine/verbs.js';
import { loadCri } from './proto.js';
import { Sandboxes } from './sandboxes.js';
import { Containers } from './containers.js';
import { Images } from './images.js';
import { imageHandlers } from './image-service.js';
import { runtimeHandlers, type RuntimeDeps, type StreamUrls } from './runtime-service.js';

export { CRI_API_VERSION, RUNTIME_NAME, RUNTIME_VERSION, type StreamUrls } from './runtime-service.js';

export class CriService implements RuntimeDeps {
  readonly sandboxes: Sandboxes;
  readonly containers: Containers;
  readonly images: Images;
  /** kubelet's UpdateRuntimeConfig: kept and shown in Status (verbose) */
  podCidr = '';

  /** the streaming server (set once it listens); Exec, Attach and PortForward are UNIMPLEMENTED without it */
  stream: StreamUrls | null = null;

  /** `podInfra`: `always` gives every pod an infra process (berthd --cri-pod-infra; engine/pods.ts) */
  constructor(
    readonly verbs: Verbs,
    podInfra: 'needed' | 'always' = 'needed',
  ) {
    this.sandboxes = new Sandboxes(verbs.k8s, verbs.pods, podInfra);
    this.containers = new Containers(verbs.k8s, this.sandboxes);
    this.images = new Images(verbs.images);
  }

  runtimeHandlers(): UntypedServiceImplementation {
    return runtimeHandlers(this);
  }

  imageHandlers(): UntypedServiceImplementation {
    return imageHandlers(this.images);
  }
}

/** Each handler but Version run once `restored` has settled. */
function afterRestore<H extends object>(handlers: H, restored: () => Promise<void>): H {
  const gated: Record<string, unknown> = {};
  for (const [name, h] of Object.entries(handlers))
    gated[name] =
      name === 'Version' || typeof h !== 'function'
        ? h
        : (...args: unknown[]) => void restored().then(() => (h as (...a: unknown[]) => void)(...args));
  return gated as H;
}

/** The gRPC server on its unix socket. */
export class CriServer {
  private readonly server = new Server({
    'grpc.max_send_message_length': 40 << 20,
    'grpc.max_receive_message_length': 16 << 20,
  });

  /**
   * `restored`: resolves once berthd's live restore has gone over every container
   * (engine/restore-gate.ts). Every call but Version waits for it, so no answer shows a container
   * as it was before the daemon's restart (running when its process died meanwhile).
   */
  constructor(
    readonly service: CriService,
    private readonly socketPath: string,
    restored: () => Promise<void> = () => Promise.resolve(),
  ) {
    const defs = loadCri();
    this.server.addService(defs.RuntimeService, afterRestore(service.runtimeHandlers(), restored));
    this.server.addService(defs.ImageService, afterRestore(service.imageHandlers(), restored));
  }

  async start(): Promise<void> {
    await fsp.mkdir(dirname(this.socketPath), { recursive: true, mode: 0o700 });
    await fsp.rm(this.socketPath, { force: true }); // a stale socket of a killed daemon
    await new Promise<void>((resolve, reject) =>
      this.server.bindAsync(`unix:${this.socketPath}`, ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await fsp.chmod(this.socketPath, 0o600);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
