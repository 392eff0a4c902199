/**
 * Pod sandboxes as verbs (for cri/). A sandbox is a container record of the k8s.io namespace in
 * one of two forms:
 * - **pinned** (no infra process, as CRI-O's `drop_infra_ctr` + `pinns`): the pod's network and
 *   IPC namespaces are made and held by bind mounts (engine/pod-ns.ts); the record is never
 *   started (it stays `created`) and the pod's containers join the namespaces by path. For a pod
 *   that needs nothing a process must hold: the front door chooses (not with a shared PID
 *   namespace, the host's network, or pod sysctls).
 * - **infra**: an infra container (`catatonit -P`) holds them, and the containers join its.
 * The pod's network (engine/k8s.ts `PodNetwork`: loopback, or CNI) is set up in the namespace. A
 * verb does the whole of a step (run, stop, remove), all-or-nothing where it makes things, and
 * keeps the pod network's state in the sandbox's record (written through: a killed daemon finds it).
 */
import { existsSync } from 'node:fs';
import { errorMessage } from '../base/errors.js';
import type { ContainerId } from '../base/ids.js';
import { log } from '../base/log.js';
import type { K8sContainer, K8sVerbs, PodNetRequest } from './k8s.js';
import type { PinnedNs } from './pod-ns.js';

/** The label of the infra's record that keeps its pod network's state (JSON of PodNetState). */
export const POD_NET_LABEL = 'io.berth.cri.net';
/** The label of a pinned sandbox's record (no infra process): `pinned`. */
export const POD_FORM_LABEL = 'io.berth.cri.form';

export interface PodNetState {
  ip: string;
  additionalIps: string[];
  /** set once the network was torn down (stop) */
  down: boolean;
  /**
   * false from just before the network's set-up until it is done: a daemon killed in between
   * finds a pod whose network is unknown, and calls it not ready (the kubelet then stops it,
   * which tears down what the set-up may have made, and makes a new one)
   */
  ready?: boolean;
}

/**
 * The pod network's state in a new sandbox's first write ("pending": no second write before the
 * set-up begins), so a daemon killed before the set-up finished finds the pod NOTREADY.
 */
const PENDING = JSON.stringify({ ip: '', additionalIps: [], down: false, ready: false } satisfies PodNetState);

/** What a pod's network needs besides the sandbox id and its namespace path. */
export type PodNetSpec = Omit<PodNetRequest, 'id' | 'netns'>;

export class PodVerbs {
  constructor(private readonly k8s: K8sVerbs) {}

  /** The pod network's state kept in an infra container's record. */
  netState(infra: K8sContainer): PodNetState {
    const v = infra.labels[POD_NET_LABEL];
    if (v)
      try {
        return JSON.parse(v) as PodNetState;
      } catch {
        /* a record written by hand: treated as unknown */
      }
    return { ip: '', additionalIps: [], down: false };
  }

  /** A sandbox without an infra process: its namespaces are pinned. */
  pinned(sandbox: K8sContainer): boolean {
    return sandbox.labels[POD_FORM_LABEL] === 'pinned';
  }

  /**
   * Its namespaces are held (the infra process runs, or the pins are there and it was not stopped)
   * and its network set-up finished (not half done by a daemon killed meanwhile).
   */
  ready(sandbox: K8sContainer): boolean {
    const net = this.netState(sandbox);
    if (this.pinned(sandbox))
      return sandbox.status === 'created' && !net.down && net.ready !== false && existsSync(sandbox.netnsPath);
    return sandbox.status === 'running' && net.ready !== false;
  }

  /**
   * Creates and starts the infra container from `body` (a Docker create body; NetworkMode `none`
   * or `host`) and sets up its network. With a network other than loopback the pod's namespace is
   * made beside the create and the network's set-up runs in it while the runtime starts the infra
   * process there (the two overlap). All or nothing: on failure the network is torn down, the
   * infra and its namespace removed. `hostNet`: the host's network, nothing to set up. The pause
   * image (PAUSE_IMAGE, which `body` names) is made first if it is missing.
   */
  async run(o: {
    body: Record<string, unknown>;
    name: string;
    hostNet: boolean;
    net: PodNetSpec;
    /** no infra process: the namespaces pinned (never with hostNet); `ipc`: an IPC namespace of its own */
    pinned?: { ipc: boolean };
  }): Promise<ContainerId> {
    if (o.pinned && !o.hostNet) return this.runPinned({ ...o, pinned: o.pinned });
    const { k8s } = this;
    const t0 = performance.now();
    await k8s.ensurePauseImage();
    const tPause = performance.now();
    const netnsPath = !o.hostNet && k8s.network.name !== 'loopback' ? k8s.newPodNamespaces(false).net : undefined;
    const made = netnsPath ? k8s.makePodNetns(netnsPath) : Promise.resolve();
    made.catch(() => undefined);
    const body = o.hostNet ? o.body : withLabel(o.body, POD_NET_LABEL, PENDING);
    const id = await this.createRecord(body, o.name, netnsPath ? { net: netnsPath } : null, made);
    const tCreated = performance.now();
    let tMade = 0;
    try {
      await made;
      tMade = performance.now();
      let tStarted = 0;
      let tWired = 0;
      const started = k8s.start(id).then(() => void (tStarted = performance.now()));
      const wired = netnsPath
        ? k8s.network.setUp({ ...o.net, id, netns: netnsPath }).then((n) => ((tWired = performance.now()), n))
        : null;
      const [s, w] = await Promise.allSettled([started, wired]);
      if (s.status === 'rejected') throw s.reason;
      if (w.status === 'rejected') throw w.reason;
      if (!o.hostNet) {
        const net = w.value ?? (await k8s.network.setUp({ ...o.net, id, netns: k8s.netnsOf(id) }));
        this.note(id, { ...net, down: false, ready: true });
      }
      const ms = (t: number) => +(t - t0).toFixed(1);
      log.debug('pod sandbox ready', {
        id,
        pauseMs: ms(tPause),
        createdMs: ms(tCreated),
        nsMs: ms(tMade),
        startedMs: ms(tStarted),
        wiredMs: tWired ? ms(tWired) : null,
        totalMs: ms(performance.now()),
      });
    } catch (e) {
      await this.abandon(id, o.hostNet ? null : { ...o.net, id, netns: netnsPath ?? '' });
      throw e;
    }
    return id;
  }

  /**
   * A pinned sandbox: its namespaces pinned (one `unshare` run) beside its record's create, then
   * the network's set-up in them; no process is started. All or nothing, as `run`.
   */
  private async runPinned(o: {
    body: Record<string, unknown>;
    name: string;
    net: PodNetSpec;
    pinned: { ipc: boolean };
  }): Promise<ContainerId> {
    const { k8s } = this;
    const t0 = performance.now();
    await k8s.ensurePauseImage();
    const ns = k8s.newPodNamespaces(o.pinned.ipc);
    const pinning = k8s.pinPodNamespaces(ns);
    pinning.catch(() => undefined);
    const body = withLabel(withLabel(o.body, POD_NET_LABEL, PENDING), POD_FORM_LABEL, 'pinned');
    const id = await this.createRecord(body, o.name, ns, pinning);
    const tCreated = performance.now();
    let tPinned = 0;
    try {
      await pinning;
      tPinned = performance.now();
      // lo came up with the namespace (pod-ns.ts): no loopback plugin
      const net = await k8s.network.setUp({ ...o.net, id, netns: ns.net, loUp: true });
      this.note(id, { ...net, down: false, ready: true });
      k8s.announce(id, 'start');
      log.debug('pod sandbox ready', {
        id,
        form: 'pinned',
        createdMs: +(tCreated - t0).toFixed(1),
        pinnedMs: +(tPinned - t0).toFixed(1),
        totalMs: +(performance.now() - t0).toFixed(1),
      });
    } catch (e) {
      // a failed pin removed its own files; a failed set-up's namespaces go with the record
      await this.abandon(id, tPinned ? { ...o.net, id, netns: ns.net, loUp: true } : null);
      throw e;
    }
    return id;
  }

  /** Stops the pod's containers (at once: the kubelet stopped them gracefully before), its network, its infra. */
  async stop(infra: K8sContainer, containers: K8sContainer[], o: { hostNet: boolean; net: PodNetSpec }): Promise<void> {
    for (const c of containers) await this.k8s.stop(c.id, 0);
    const wasReady = this.ready(infra);
    await this.tearDown(infra, o);
    if (!this.pinned(infra)) await this.k8s.stop(infra.id, 0);
    else if (wasReady) this.k8s.announce(infra.id, 'die'); // no process to end: the namespaces stay until removal
  }

  /** Removes the pod's containers, its network (if still up), its infra and its namespace. Idempotent. */
  async remove(
    infra: K8sContainer,
    containers: K8sContainer[],
    o: { hostNet: boolean; net: PodNetSpec },
  ): Promise<void> {
    for (const c of containers) await this.k8s.remove(c.id);
    await this.tearDown(infra, o);
    await this.k8s.remove(infra.id, true);
  }

  /** The network's teardown while the namespace still exists (DEL finds the pod's interfaces), once. */
  private async tearDown(infra: K8sContainer, o: { hostNet: boolean; net: PodNetSpec }): Promise<void> {
    const state = this.netState(infra);
    if (o.hostNet || state.down) return;
    let netns = '';
    try {
      netns = this.k8s.netnsOf(infra.id);
    } catch {
      /* the infra process is gone: tear down what the network knows */
    }
    await this.k8s.network.tearDown({ ...o.net, id: infra.id, netns, loUp: this.pinned(infra) });
    this.note(infra.id, { ...state, down: true, ready: false });
  }

  /**
   * The sandbox's record, made while its namespaces at `ns` are being made by `making`; if the
   * create fails, they are removed once made.
   */
  private async createRecord(
    body: Record<string, unknown>,
    name: string,
    ns: PinnedNs | null,
    making: Promise<void>,
  ): Promise<ContainerId> {
    try {
      return await this.k8s.create(
        body,
        name,
        undefined,
        ns ? { netnsPath: ns.net, ...(ns.ipc ? { ipcnsPath: ns.ipc } : {}) } : {},
      );
    } catch (e) {
      if (ns) await making.then(() => this.k8s.dropPodNamespaces(ns.net, ns.ipc)).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Undoes a run that failed after its record was made: the network's set-up (`net`, when it may
   * have begun), then the record with the namespaces made for it.
   */
  private async abandon(id: ContainerId, net: PodNetRequest | null): Promise<void> {
    if (net)
      await this.k8s.network
        .tearDown(net)
        .catch((err: unknown) => log.warn('pod network teardown after a failed run', { err: errorMessage(err) }));
    await this.k8s.remove(id, true).catch(() => undefined);
  }

  private note(id: string, s: PodNetState): void {
    this.k8s.setNote(id, POD_NET_LABEL, JSON.stringify(s));
  }
}

/** `body` (a Docker create body) with one more label. */
function withLabel(body: Record<string, unknown>, key: string, value: string): Record<string, unknown> {
  const labels = (body['Labels'] ?? {}) as Record<string, string>;
  return { ...body, Labels: { ...labels, [key]: value } };
}
