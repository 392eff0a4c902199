/** berthd's CRI endpoint (src/cri/): started after the Docker API, its code loaded only when it is on. */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import type { Clock } from '../base/clock.js';
import type { Verbs } from '../engine/verbs.js';

/** What startCri reads of berthd's flags. */
export interface CriFlags {
  root: string;
  criStreamAddress: string;
  criStreamPort: number;
  criPodInfra: 'needed' | 'always';
  cniConfDir: string;
  cniBinDirs: string[];
}

/**
 * The CRI endpoint (src/cri/), its streaming server and the pods' network (CNI when the conf dir
 * holds a network configuration, else loopback only). Its code is loaded only when it is on.
 */
export async function startCri(
  verbs: Verbs,
  flags: CriFlags,
  socket: string,
  clock: Clock,
): Promise<{ close(): Promise<void> }> {
  const [{ CriServer, CriService }, { CriStreamBackend }, { StreamServer }] = await Promise.all([
    import('../cri/server.js'),
    import('../cri/streaming-backend.js'),
    import('../cri/stream/server.js'),
  ]);
  const confs = await fsp.readdir(flags.cniConfDir).catch(() => [] as string[]);
  if (confs.some((f) => /\.(conflist|conf|json)$/.test(f))) {
    const [{ Cni }, { CniPodNetwork }] = await Promise.all([
      import('../network/cni.js'),
      import('../network/cni-pod.js'),
    ]);
    verbs.k8s.network = new CniPodNetwork(
      new Cni({
        confDir: flags.cniConfDir,
        binDirs: flags.cniBinDirs.length ? flags.cniBinDirs : ['/usr/lib/cni', '/opt/cni/bin'],
        cacheDir: join(flags.root, 'cni'),
      }),
    );
  }
  const service = new CriService(verbs, flags.criPodInfra);
  const stream = new StreamServer({
    backend: new CriStreamBackend(verbs.k8s, service.sandboxes),
    address: flags.criStreamAddress,
    port: flags.criStreamPort,
    clock,
  });
  // the streaming server is a part of the endpoint: without it (its address cannot be bound here)
  // the CRI serves all else, and Exec, Attach and PortForward answer UNIMPLEMENTED saying why
  await stream.start().then(
    () => (service.stream = stream),
    (e: unknown) =>
      log.error('CRI streaming server not started: Exec, Attach and PortForward are off', { err: errorMessage(e) }),
  );
  // live restore: every CRI call but Version waits for it to have gone over every container
  const server = new CriServer(service, socket, () => verbs.system.restored(null));
  await server.start().catch(async (e: unknown) => {
    await stream.close();
    throw e;
  });
  log.info('CRI endpoint ready', { socket, network: verbs.k8s.network.name });
  return {
    close: async () => {
      await server.close();
      await stream.close();
    },
  };
}
