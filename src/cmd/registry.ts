/**
 * `berth registry serve|gc`: the registry server, run by the berth CLI as its own process.
 *   berth registry serve --addr 127.0.0.1:5000 --root /var/lib/berth-registry
 *       [--htpasswd FILE] [--public PATTERN]... [--acl FILE] [--auth basic|token] [--token-key FILE]
 *       [--delete-enabled] [--tls-cert FILE --tls-key FILE]
 *       [--trust-timestamp-key FILE [--trust-timestamp-expiry 1h]]
 *   berth registry gc --root DIR [--grace SECONDS] [--dry-run]
 */
import { readFileSync } from 'node:fs';
import { isObject } from '../base/json.js';
import { log } from '../base/log.js';
import type { AclRule } from '../registry/auth.js';
import { collectGarbage } from '../registry/gc.js';
import { RegistryServer } from '../registry/server.js';
import { RegistryStorage } from '../registry/storage.js';

const USAGE = `Usage:
  berth registry serve --addr HOST:PORT --root DIR [--htpasswd FILE] [--public PATTERN]... [--acl FILE]
                       [--auth basic|token] [--token-key FILE] [--delete-enabled] [--tls-cert FILE --tls-key FILE]
                       [--trust-timestamp-key FILE [--trust-timestamp-expiry 1h]]
  berth registry gc --root DIR [--grace SECONDS] [--dry-run]
`;

function flags(argv: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, inline] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const boolean = k === 'delete-enabled' || k === 'dry-run';
    const v = inline ?? (boolean ? 'true' : argv[++i]);
    if (v === undefined) throw new Error(`--${k} needs a value`);
    out.set(k, [...(out.get(k) ?? []), v]);
  }
  return out;
}

function parseAcl(file: string): AclRule[] {
  const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
  const rules = isObject(v) ? v['rules'] : v;
  if (!Array.isArray(rules)) throw new Error(`${file}: expected {"rules": [{"user", "repos", "actions"}]}`);
  return rules.map((r, i) => {
    if (!isObject(r) || typeof r['user'] !== 'string' || !Array.isArray(r['repos']) || !Array.isArray(r['actions']))
      throw new Error(`${file}: rule ${i} needs user, repos, actions`);
    for (const a of r['actions'])
      if (!['pull', 'push', 'delete'].includes(a as string))
        throw new Error(`${file}: rule ${i}: unknown action ${String(a)}`);
    return r as unknown as AclRule;
  });
}

/** `3600`, `90s`, `15m`, `2h` -> seconds */
function parseSeconds(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(s);
  if (!m) throw new Error(`invalid duration ${s}`);
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 } as Record<string, number>)[m[2] ?? 's']!;
}

export async function registryMain(argv: string[]): Promise<number> {
  const sub = argv.shift();
  let f: Map<string, string[]>;
  try {
    f = flags(argv);
  } catch (e) {
    process.stderr.write(`berth registry: ${(e as Error).message}\n${USAGE}`);
    return 125;
  }
  const one = (k: string) => f.get(k)?.at(-1);
  const root = one('root');
  if ((sub !== 'serve' && sub !== 'gc') || !root) {
    process.stderr.write(USAGE);
    return sub === '--help' ? 0 : 125;
  }
  if (sub === 'gc') {
    const r = await collectGarbage(new RegistryStorage(root), {
      graceSeconds: Number(one('grace') ?? 3600),
      dryRun: one('dry-run') === 'true',
    });
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return 0;
  }
  const auth = one('auth') ?? 'basic';
  if (auth !== 'basic' && auth !== 'token') {
    process.stderr.write(`berth registry: --auth must be basic or token\n`);
    return 125;
  }
  const tokenKey = one('token-key');
  // trust's signing code is loaded only when the registry keeps a timestamp key
  const tsKey = one('trust-timestamp-key');
  const ttl = parseSeconds(one('trust-timestamp-expiry') ?? '3600') * 1000;
  const timestamper = tsKey ? (await import('../trust/timestamper.js')).Timestamper.open(tsKey, ttl) : undefined;
  const server = new RegistryServer({
    root,
    addr: one('addr') ?? '127.0.0.1:5000',
    ...(one('htpasswd') ? { htpasswd: one('htpasswd')! } : {}),
    public: f.get('public') ?? [],
    ...(one('acl') ? { acl: parseAcl(one('acl')!) } : {}),
    mode: auth,
    ...(tokenKey ? { tokenKey: readFileSync(tokenKey) } : {}),
    deleteEnabled: one('delete-enabled') === 'true',
    ...(one('tls-cert') ? { tlsCert: one('tls-cert')!, tlsKey: one('tls-key') ?? '' } : {}),
    ...(timestamper ? { timestamper } : {}),
  });
  const { host, port } = await server.listen();
  log.info('registry ready', { addr: `${host}:${port}`, root, auth, tls: Boolean(one('tls-cert')) });
  await new Promise<void>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => void server.close().then(resolve));
  });
  return 0;
}

// run directly: node dist/src/cmd/registry.js serve ...
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  void registryMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`berth registry: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
