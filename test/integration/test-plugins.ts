/**
 * Two small legacy plugins for the tests, each an HTTP server on a unix socket speaking Docker's
 * plugin protocol: a volume driver keeping volumes as directories, and a network driver making
 * its own bridge and veth pairs with iproute2. Both record the calls they get.
 */
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface TestPlugin {
  name: string;
  calls: Array<{ method: string; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

function serve(
  sock: string,
  name: string,
  handle: (method: string, body: Record<string, unknown>) => unknown,
): Promise<TestPlugin> {
  const calls: TestPlugin['calls'] = [];
  const srv = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const method = (req.url ?? '/').slice(1);
      const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
      calls.push({ method, body });
      let out: unknown;
      try {
        out = handle(method, body);
      } catch (e) {
        out = { Err: (e as Error).message };
      }
      res.setHeader('Content-Type', 'application/vnd.docker.plugins.v1.2+json');
      res.end(JSON.stringify(out ?? {}));
    });
  });
  return new Promise((resolve) =>
    srv.listen(sock, () => resolve({ name, calls, close: () => new Promise<void>((r) => srv.close(() => r())) })),
  );
}

/** A volume driver: each volume is a directory under `base`. */
export function volumePlugin(dir: string, base: string): Promise<TestPlugin> {
  const name = `tvol${randomBytes(3).toString('hex')}`;
  mkdirSync(base, { recursive: true });
  const vols = new Set<string>();
  return serve(join(dir, `${name}.sock`), name, (method, b) => {
    const n = String(b['Name'] ?? '');
    switch (method) {
      case 'Plugin.Activate':
        return { Implements: ['VolumeDriver'] };
      case 'VolumeDriver.Create':
        mkdirSync(join(base, n), { recursive: true });
        vols.add(n);
        return {};
      case 'VolumeDriver.Remove':
        rmSync(join(base, n), { recursive: true, force: true });
        vols.delete(n);
        return {};
      case 'VolumeDriver.Mount':
      case 'VolumeDriver.Path':
        if (!vols.has(n)) throw new Error(`no volume ${n}`);
        return { Mountpoint: join(base, n) };
      case 'VolumeDriver.Unmount':
        return {};
      case 'VolumeDriver.Get':
        return { Volume: { Name: n, Mountpoint: join(base, n) } };
      case 'VolumeDriver.List':
        return { Volumes: [...vols].map((v) => ({ Name: v, Mountpoint: join(base, v) })) };
      case 'VolumeDriver.Capabilities':
        return { Capabilities: { Scope: 'local' } };
      default:
        throw new Error(`unknown method ${method}`);
    }
  });
}

/** A network driver: its own bridge per network, a veth pair per endpoint. */
export function networkPlugin(dir: string): Promise<TestPlugin & { bridges: Map<string, string> }> {
  const name = `tnet${randomBytes(3).toString('hex')}`;
  const bridges = new Map<string, string>();
  const veths = new Map<string, string>();
  const ip = (...a: string[]) => execFileSync('ip', a);
  return serve(join(dir, `${name}.sock`), name, (method, b) => {
    const nid = String(b['NetworkID'] ?? '');
    const eid = String(b['EndpointID'] ?? '');
    switch (method) {
      case 'Plugin.Activate':
        return { Implements: ['NetworkDriver'] };
      case 'NetworkDriver.GetCapabilities':
        return { Scope: 'local' };
      case 'NetworkDriver.CreateNetwork': {
        const br = `tpb${nid.slice(0, 8)}`;
        const gw = (b['IPv4Data'] as Array<{ Gateway: string }>)[0]!.Gateway;
        ip('link', 'add', br, 'type', 'bridge');
        ip('addr', 'add', gw, 'dev', br);
        ip('link', 'set', br, 'up');
        bridges.set(nid, br);
        return {};
      }
      case 'NetworkDriver.DeleteNetwork':
        ip('link', 'del', bridges.get(nid)!);
        bridges.delete(nid);
        return {};
      case 'NetworkDriver.CreateEndpoint':
        return { Interface: {} };
      case 'NetworkDriver.Join': {
        const tag = eid.slice(0, 8);
        ip('link', 'add', `tph${tag}`, 'type', 'veth', 'peer', 'name', `tpc${tag}`);
        ip('link', 'set', `tph${tag}`, 'master', bridges.get(nid)!);
        ip('link', 'set', `tph${tag}`, 'up');
        veths.set(eid, `tph${tag}`);
        return { InterfaceName: { SrcName: `tpc${tag}`, DstPrefix: 'eth' } };
      }
      case 'NetworkDriver.Leave': {
        const v = veths.get(eid);
        if (v) {
          try {
            ip('link', 'del', v);
          } catch {
            /* gone with the container's namespace */
          }
          veths.delete(eid);
        }
        return {};
      }
      case 'NetworkDriver.DeleteEndpoint':
      case 'NetworkDriver.DiscoverNew':
      case 'NetworkDriver.DiscoverDelete':
      case 'NetworkDriver.ProgramExternalConnectivity':
      case 'NetworkDriver.RevokeExternalConnectivity':
        return {};
      default:
        throw new Error(`unknown method ${method}`);
    }
  }).then((p) => Object.assign(p, { bridges }));
}
