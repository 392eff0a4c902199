/**
 * Docker's legacy plugin protocol (managed `docker plugin install` plugins are not supported):
 * discovery of a plugin by name — a socket `<dir>/<name>.sock` or `<dir>/<name>/<name>.sock`
 * under /run/docker/plugins, or a `<name>.spec` (a URL) / `<name>.json` ({Name, Addr}) under
 * /etc/docker/plugins and /usr/lib/docker/plugins — then `POST /Plugin.Activate`, which says
 * what it implements (`VolumeDriver`, `NetworkDriver`, ...). Every call is an HTTP POST of JSON to
 * `/<Interface>.<Method>`; a non-empty `Err` in the answer is an error.
 */
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { invalidArgument, notFound, unavailable } from '../base/errors.js';
import { isObject } from '../base/json.js';

const MEDIA = 'application/vnd.docker.plugins.v1.2+json';
export const DEFAULT_DIRS = ['/run/docker/plugins', '/etc/docker/plugins', '/usr/lib/docker/plugins'];

type Addr = { socketPath: string } | { host: string; port: number };

export class PluginClient {
  constructor(
    readonly name: string,
    private readonly addr: Addr,
    readonly implements_: string[] = [],
  ) {}

  /** POSTs `body` to `/<method>`; resolves with the JSON answer, rejects on `Err` or HTTP failure. */
  call<T = Record<string, unknown>>(method: string, body: unknown = {}, timeoutMs = 30_000): Promise<T> {
    const payload = Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          ...this.addr,
          path: `/${method}`,
          method: 'POST',
          headers: { 'Content-Type': MEDIA, Accept: MEDIA, 'Content-Length': payload.length },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let v: unknown = {};
            try {
              v = text ? JSON.parse(text) : {};
            } catch {
              if ((res.statusCode ?? 500) >= 400)
                return reject(unavailable(`plugin ${this.name}: ${method}: HTTP ${res.statusCode}: ${text.trim()}`));
              return reject(invalidArgument(`plugin ${this.name}: ${method}: not JSON: ${text.slice(0, 200)}`));
            }
            const err = isObject(v) && typeof v['Err'] === 'string' ? v['Err'] : '';
            if (err) return reject(invalidArgument(`plugin ${this.name}: ${err}`));
            if ((res.statusCode ?? 500) >= 400)
              return reject(unavailable(`plugin ${this.name}: ${method}: HTTP ${res.statusCode}`));
            resolve(v as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e) => reject(unavailable(`plugin ${this.name}: ${method}: ${e.message}`)));
      req.end(payload);
    });
  }
}

export class PluginRegistry {
  private readonly active = new Map<string, Promise<PluginClient>>();

  constructor(private readonly dirs: string[] = DEFAULT_DIRS) {}

  private locate(name: string): Addr | null {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) return null;
    for (const d of this.dirs) {
      for (const p of [join(d, `${name}.sock`), join(d, name, `${name}.sock`)])
        if (existsSync(p)) return { socketPath: p };
      for (const ext of ['spec', 'json']) {
        const f = join(d, `${name}.${ext}`);
        if (!existsSync(f)) continue;
        const text = readFileSync(f, 'utf8').trim();
        const url = ext === 'json' ? String((JSON.parse(text) as { Addr?: string }).Addr ?? '') : text;
        if (url.startsWith('unix://')) return { socketPath: url.slice('unix://'.length) };
        const m = /^(?:tcp|http):\/\/([^:/]+):(\d+)/.exec(url);
        if (m) return { host: m[1]!, port: Number(m[2]) };
        throw invalidArgument(`plugin ${name}: unsupported address ${url} in ${f}`);
      }
    }
    return null;
  }

  /** The activated plugin `name`, which must implement `iface` (`VolumeDriver`, `NetworkDriver`). */
  async get(name: string, iface: string): Promise<PluginClient> {
    let p = this.active.get(name);
    if (!p) {
      p = (async () => {
        const addr = this.locate(name);
        if (!addr) throw notFound(`plugin "${name}" not found`);
        const probe = new PluginClient(name, addr);
        const r = await probe.call<{ Implements?: string[] }>('Plugin.Activate', {}, 10_000);
        return new PluginClient(name, addr, r.Implements ?? []);
      })();
      this.active.set(name, p);
      p.catch(() => this.active.delete(name)); // a plugin that was not there may come later
    }
    const c = await p;
    if (!c.implements_.includes(iface)) throw invalidArgument(`plugin "${name}" does not implement ${iface}`);
    return c;
  }
}
