/** CNI (cni.ts) behind the engine's PodNetwork interface, for CRI pods. */
import type { Cni, CniPod } from './cni.js';

/**
 * A pod as the CRI side asks for its network (the shape of engine/k8s.ts `PodNetRequest`, which
 * network/ cannot import: the engine is above it).
 */
export interface CniPodRequest {
  /** the sandbox id */
  id: string;
  name: string;
  namespace: string;
  uid: string;
  /** the pod's network namespace; empty when it is gone (DEL does what it can) */
  netns: string;
  portMappings: Array<{ protocol: 'tcp' | 'udp' | 'sctp'; containerPort: number; hostPort: number; hostIp: string }>;
  /** the pod's `lo` is up already (it was brought up with the namespace): no loopback plugin */
  loUp?: boolean;
}

/**
 * `Cni` behind the engine's `PodNetwork` interface (engine/k8s.ts; this class has its shape): the
 * pod's `K8S_POD_*` as CNI_ARGS, as containerd sends them; the pod IP is the first address of the
 * result, IPv4 before IPv6 (containerd's default), the others its additional IPs; `status` is CRI's
 * NetworkReady with containerd's reason `NetworkPluginNotReady`.
 */
export class CniPodNetwork {
  readonly name = 'cni';

  constructor(readonly cni: Cni) {}

  private pod(p: CniPodRequest): CniPod {
    return {
      containerId: p.id,
      netnsPath: p.netns,
      portMappings: p.portMappings.map((m) => ({
        hostPort: m.hostPort,
        containerPort: m.containerPort,
        protocol: m.protocol,
        ...(m.hostIp ? { hostIP: m.hostIp } : {}),
      })),
      args: {
        K8S_POD_NAMESPACE: p.namespace,
        K8S_POD_NAME: p.name,
        K8S_POD_INFRA_CONTAINER_ID: p.id,
        K8S_POD_UID: p.uid,
      },
      ...(p.loUp ? { loopback: false } : {}),
    };
  }

  async setUp(p: CniPodRequest): Promise<{ ip: string; additionalIps: string[] }> {
    const r = await this.cni.setUp(this.pod(p));
    const ips = r.ips.map((i) => i.address.split('/')[0]!);
    ips.sort((a, b) => Number(a.includes(':')) - Number(b.includes(':'))); // stable: IPv4 first
    return { ip: ips[0] ?? '', additionalIps: ips.slice(1) };
  }

  async tearDown(p: CniPodRequest): Promise<void> {
    await this.cni.tearDown(this.pod(p));
  }

  async status(): Promise<{ ready: boolean; reason: string; message: string }> {
    try {
      await this.cni.status();
      return { ready: true, reason: '', message: '' };
    } catch (e) {
      return { ready: false, reason: 'NetworkPluginNotReady', message: e instanceof Error ? e.message : String(e) };
    }
  }
}
