/**
 * The cluster store: berthd's client of etcd (`--cluster-store etcd://HOST:PORT`). It knows keys,
 * leases, watches and transactions, nothing of networks. Every key lives under `/berth/v1/`.
 *
 * Membership: the host holds one lease (TTL `--cluster-ttl`, kept alive every TTL/3) and registers
 * itself at `hosts/<host id>` under it; keys a host must lose when it dies (its endpoints) are put
 * under the same lease. When etcd says the lease is gone (it expired while the host could not
 * reach etcd) a new one is granted and the `onLease` callbacks put the host's keys back.
 * While etcd is unreachable the lease id is kept (etcd refreshes leases when it comes back), calls
 * fail with Unavailable, and nothing is deleted on the host: what runs keeps running.
 */
import { hostname } from 'node:os';
import { ConstantBackoff } from 'cockatiel';
import { Etcd3, EtcdLeaseInvalidError, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import { errorMessage, isBerthError, unavailable } from '../base/errors.js';
import { log } from '../base/log.js';
import { parseStoreUrl } from './flags.js';

export { parseAdvertise, parseStoreUrl } from './flags.js';

export const PREFIX = '/berth/v1/';
/** How long one etcd call may take before it fails (Unavailable). */
const CALL_DEADLINE_MS = 5_000;

export interface ClusterOptions {
  /** `etcd://HOST:PORT` */
  url: string;
  /** the address other hosts reach this one at (the VXLAN tunnels' local end) */
  advertise: string;
  /** this daemon's id (stable across restarts: its engine id) */
  hostId: string;
  /** seconds a host's keys outlive its last keepalive */
  ttlSec: number;
}

/** What a host registers (`hosts/<id>`). */
export interface HostDoc {
  Id: string;
  Name: string;
  Addr: string;
}

export interface Entry {
  key: string;
  value: string;
  modRevision: number;
  lease: string;
}

/** `p` or Unavailable after `ms` (calls on streams have no deadline of their own). */
function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e instanceof Error ? e : new Error(String(e)))),
    );
  });
}

const entryOf = (kv: IKeyValue): Entry => ({
  key: kv.key.toString(),
  value: kv.value.toString(),
  modRevision: Number(kv.mod_revision),
  lease: String(kv.lease),
});

export class ClusterStore {
  readonly client: Etcd3;
  readonly hostId: string;
  readonly advertise: string;
  readonly url: string;
  private lease: Lease | null = null;
  private leaseIdValue: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** whether the last call to etcd answered (for `info` and messages) */
  reachable = false;
  /** run after every lease grant (the first and any after an expiry): put this host's keys back */
  readonly onLease: Array<(leaseId: string) => Promise<void>> = [];
  private readonly watchers: Watcher[] = [];

  constructor(readonly opts: ClusterOptions) {
    this.url = opts.url;
    this.hostId = opts.hostId;
    this.advertise = opts.advertise;
    this.client = new Etcd3({
      hosts: parseStoreUrl(opts.url),
      dialTimeout: CALL_DEADLINE_MS,
      defaultCallOptions: (ctx: { isStream: boolean }) =>
        ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS },
      // a watch reconnects within a second of etcd coming back (the default backs off to 30 s)
      faultHandling: { watchBackoff: new ConstantBackoff(1000).next() },
    });
  }

  /** Wraps an etcd failure: Unavailable, naming the store. A BerthError passes unchanged. */
  fail(e: unknown, what: string): Error {
    if (isBerthError(e)) return e;
    return unavailable(`cluster store ${this.url} is unreachable (${what}): ${errorMessage(e)}`, e);
  }

  /** Runs `f` against etcd; any failure is Unavailable. */
  async call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      const v = await deadline(f(), CALL_DEADLINE_MS + 1000, what);
      this.reachable = true;
      return v;
    } catch (e) {
      if (!isBerthError(e)) this.reachable = false;
      throw this.fail(e, what);
    }
  }

  /** The lease this host's keys go under; Unavailable while there is none. */
  leaseId(): string {
    if (!this.leaseIdValue)
      throw unavailable(`cluster store ${this.url} is unreachable: this host has no lease in it yet`);
    return this.leaseIdValue;
  }

  /** Starts the membership loop (returns at once; the first grant is tried now). */
  start(): void {
    const tick = async () => {
      if (this.closed) return;
      await this.beat().catch((e: unknown) => log.debug('cluster keepalive', { err: errorMessage(e) }));
      if (!this.closed) this.timer = setTimeout(() => void tick(), Math.max(300, (this.opts.ttlSec * 1000) / 3));
    };
    void tick();
  }

  /** One step of membership: grant a lease (and register) when there is none, else keep it alive. */
  private async beat(): Promise<void> {
    if (this.lease && this.leaseIdValue) {
      try {
        await deadline(this.lease.keepaliveOnce(), CALL_DEADLINE_MS, 'lease keepalive');
        this.reachable = true;
        return;
      } catch (e) {
        if (!(e instanceof EtcdLeaseInvalidError)) {
          this.reachable = false;
          throw e; // unreachable: keep the id, etcd refreshes leases when it comes back
        }
        log.warn('cluster lease expired: registering again', { store: this.url });
        this.lease.release();
        this.lease = null;
        this.leaseIdValue = null;
      }
    }
    const lease = this.client.lease(this.opts.ttlSec, { autoKeepAlive: false });
    lease.on('lost', () => undefined); // losses are seen by keepaliveOnce
    let id: string;
    try {
      id = await deadline(lease.grant(), CALL_DEADLINE_MS, 'lease grant');
    } catch (e) {
      lease.release();
      this.reachable = false;
      throw e;
    }
    const doc: HostDoc = { Id: this.hostId, Name: hostname(), Addr: this.advertise };
    await this.client.put(`${PREFIX}hosts/${this.hostId}`).value(JSON.stringify(doc)).lease(id);
    this.lease = lease;
    this.leaseIdValue = id;
    this.reachable = true;
    log.info('joined the cluster store', { store: this.url, advertise: this.advertise, lease: id });
    for (const f of this.onLease)
      await f(id).catch((e: unknown) => log.warn('re-registering', { err: errorMessage(e) }));
  }

  /** Every key under `PREFIX + prefix`, and the store's revision they were read at. */
  async list(prefix: string): Promise<{ entries: Entry[]; revision: number }> {
    return this.call(`list ${prefix}`, async () => {
      const res = await this.client
        .getAll()
        .prefix(PREFIX + prefix)
        .exec();
      return { entries: res.kvs.map(entryOf), revision: Number(res.header.revision) };
    });
  }

  /**
   * Watches the keys under `PREFIX + prefix`: `onEvent` for each change after revision `from`
   * (the revision a `list` was read at). The watch resumes by itself when etcd comes back.
   */
  async watch(
    prefix: string,
    from: number,
    onEvent: (kind: 'put' | 'delete', e: Entry) => void,
    onReconnect: () => void,
  ): Promise<void> {
    const w = await this.call(`watch ${prefix}`, () =>
      this.client
        .watch()
        .prefix(PREFIX + prefix)
        .startRevision(String(from + 1))
        .create(),
    );
    w.on('put', (kv) => onEvent('put', entryOf(kv)));
    w.on('delete', (kv) => onEvent('delete', entryOf(kv)));
    // create() resolved on the first `connected`: every one from now on is a reconnection
    w.on('connected', () => onReconnect());
    w.on('error', (e) => log.debug('cluster watch error', { err: errorMessage(e) }));
    this.watchers.push(w);
  }

  /** Stops the loop and the watches. The lease is left to expire: a daemon restarted within the TTL re-registers without a gap. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.lease?.release();
    for (const w of this.watchers) await w.cancel().catch(() => undefined);
    this.client.close();
  }
}
