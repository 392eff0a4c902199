/**
 * `berth pods` and `berth pod inspect POD...`: what Kubernetes runs on this berthd, read from its
 * CRI endpoint (not a second crictl: listing and inspecting only). `--cri-socket PATH` or
 * BERTH_CRI_SOCKET, default /run/berth/cri.sock.
 */
import { CriClient, DEFAULT_CRI_SOCKET, type CriMessage } from '../../client/cri.js';
import { table, ago } from '../format.js';

interface Pod {
  id: string;
  metadata: { name: string; namespace: string; uid: string; attempt: number };
  state: string;
  created_at: number;
}

interface Ctr {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number };
  state: string;
  image: { image: string };
}

function socketOf(argv: string[]): { socket: string; rest: string[] } {
  let socket = process.env['BERTH_CRI_SOCKET'] || DEFAULT_CRI_SOCKET;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--cri-socket') socket = argv[++i] ?? socket;
    else if (a.startsWith('--cri-socket=')) socket = a.slice('--cri-socket='.length);
    else rest.push(a);
  }
  return { socket: socket.replace(/^unix:\/\//, ''), rest };
}

export async function pods(argv: string[], out: (s: string) => void): Promise<void> {
  const { socket, rest } = socketOf(argv);
  const quiet = rest.includes('-q') || rest.includes('--quiet');
  const c = new CriClient(socket);
  try {
    const items = ((await c.call('ListPodSandbox')) as { items: Pod[] }).items;
    const ctrs = ((await c.call('ListContainers')) as { containers: Ctr[] }).containers;
    items.sort((a, b) => b.created_at - a.created_at);
    if (quiet) return out(items.map((p) => `${p.id}\n`).join(''));
    const rows = [['POD ID', 'CREATED', 'STATE', 'NAME', 'NAMESPACE', 'ATTEMPT', 'CONTAINERS', 'IP']];
    for (const p of items) {
      const mine = ctrs.filter((x) => x.pod_sandbox_id === p.id);
      const running = mine.filter((x) => x.state === 'CONTAINER_RUNNING').length;
      const st = (await c.call('PodSandboxStatus', { pod_sandbox_id: p.id })) as {
        status: { network: { ip: string } | null };
      };
      rows.push([
        p.id.slice(0, 13),
        ago(Math.floor(p.created_at / 1e9)),
        p.state === 'SANDBOX_READY' ? 'Ready' : 'NotReady',
        p.metadata.name,
        p.metadata.namespace,
        String(p.metadata.attempt),
        `${running}/${mine.length}`,
        st.status.network?.ip ?? '',
      ]);
    }
    out(table(rows));
  } finally {
    c.close();
  }
}

/** A pod's status (verbose) and its containers' statuses, as one JSON document per pod. */
export async function podInspect(argv: string[], out: (s: string) => void): Promise<void> {
  const { socket, rest } = socketOf(argv);
  if (rest.length === 0) throw new Error('berth pod inspect: at least one pod id (or unique prefix) is required');
  const c = new CriClient(socket);
  try {
    const docs: CriMessage[] = [];
    for (const ref of rest) {
      const st = (await c.call('PodSandboxStatus', { pod_sandbox_id: ref, verbose: true })) as {
        status: { id: string };
        info: Record<string, string>;
      };
      const ctrs = (
        (await c.call('ListContainers', { filter: { pod_sandbox_id: st.status.id } })) as {
          containers: Ctr[];
        }
      ).containers;
      const containers: CriMessage[] = [];
      for (const x of ctrs)
        containers.push(((await c.call('ContainerStatus', { container_id: x.id })) as { status: CriMessage }).status);
      const info: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(st.info ?? {}))
        try {
          info[k] = JSON.parse(v);
        } catch {
          info[k] = v;
        }
      docs.push({ ...st.status, info, containers });
    }
    out(JSON.stringify(docs, null, 4) + '\n');
  } finally {
    c.close();
  }
}

/** Entry from bin/berth: `pods [-q]` or `pod inspect POD...`; the exit code. */
export async function podsMain(argv: string[]): Promise<number> {
  const out = (s: string) => void process.stdout.write(s);
  try {
    if (argv[0] === 'pods') await pods(argv.slice(1), out);
    else if (argv[0] === 'pod' && argv[1] === 'inspect') await podInspect(argv.slice(2), out);
    else if (argv[0] === 'pod' && (argv[1] === 'ls' || argv[1] === 'list')) await pods(argv.slice(2), out);
    else {
      process.stderr.write(
        'usage: berth pods [-q] [--cri-socket PATH] | berth pod inspect POD... [--cri-socket PATH]\n',
      );
      return 1;
    }
    return 0;
  } catch (e) {
    process.stderr.write(`berth: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
