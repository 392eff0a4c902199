/**
 * ListMetricDescriptors / ListPodSandboxMetrics: what the cgroups give, under cAdvisor's names (the
 * kubelet publishes them as they are). Values are UInt64: CPU time in whole seconds is all a
 * counter of seconds can carry here (the stats RPCs have it in nanoseconds). Metrics are gathered
 * live (timestamp 0).
 */
import type { K8sVerbs, K8sStats } from '../engine/k8s.js';
import { rssBytes, workingSetBytes } from './memory.js';
import type { Containers } from './containers.js';
import type { Sandboxes } from './sandboxes.js';

const LABELS = ['container', 'pod', 'namespace'];

interface Def {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE';
  value: (st: K8sStats) => number | null;
}

const DEFS: Def[] = [
  {
    name: 'container_cpu_usage_seconds_total',
    help: 'Cumulative cpu time consumed, in whole seconds',
    type: 'COUNTER',
    value: (s) => (s.cgroup ? Math.floor(s.cgroup.cpuTotalNs / 1e9) : null),
  },
  {
    name: 'container_memory_usage_bytes',
    help: 'Current memory usage in bytes, including all memory regardless of when it was accessed',
    type: 'GAUGE',
    value: (s) => s.cgroup?.memUsage ?? null,
  },
  {
    name: 'container_memory_working_set_bytes',
    help: 'Current working set in bytes (usage minus inactive file cache)',
    type: 'GAUGE',
    value: (s) => (s.cgroup ? workingSetBytes(s.cgroup) : null),
  },
  {
    name: 'container_memory_rss',
    help: 'Size of RSS in bytes',
    type: 'GAUGE',
    value: (s) => (s.cgroup ? rssBytes(s.cgroup) : null),
  },
  {
    name: 'container_spec_memory_limit_bytes',
    help: 'Memory limit for the container (0: none)',
    type: 'GAUGE',
    value: (s) => (s.cgroup ? (s.cgroup.memLimit < 2 ** 60 ? s.cgroup.memLimit : 0) : null),
  },
  {
    name: 'container_processes',
    help: 'Number of processes running inside the container',
    type: 'GAUGE',
    value: (s) => s.cgroup?.pids ?? null,
  },
  {
    name: 'container_fs_usage_bytes',
    help: "Bytes of the container's writable layer",
    type: 'GAUGE',
    value: (s) => s.writableBytes,
  },
];

/** The metrics of one container's stats, by name (those its cgroup does not give left out). */
export function metricValues(st: K8sStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of DEFS) {
    const v = d.value(st);
    if (v !== null) out[d.name] = Math.round(v);
  }
  return out;
}

export function metricDescriptors(): object {
  return { descriptors: DEFS.map((d) => ({ name: d.name, help: d.help, label_keys: LABELS })) };
}

export async function podMetrics(k8s: K8sVerbs, sandboxes: Sandboxes, containers: Containers): Promise<object> {
  const pods: object[] = [];
  for (const s of sandboxes.all()) {
    if (!sandboxes.ready(s)) continue;
    const container_metrics: object[] = [];
    for (const c of sandboxes.containersOf(s.c.id)) {
      if (c.status !== 'running') continue;
      const x = containers.get(c.id);
      const st = await k8s.stats(c.id);
      const labels = [x.meta.metadata.name, s.meta.metadata.name, s.meta.metadata.namespace];
      container_metrics.push({
        container_id: c.id,
        metrics: Object.entries(metricValues(st)).map(([name, value]) => ({
          name,
          timestamp: 0,
          metric_type: DEFS.find((d) => d.name === name)?.type,
          label_values: labels,
          value: { value },
        })),
      });
    }
    pods.push({ pod_sandbox_id: s.c.id, metrics: [], container_metrics });
  }
  return { pod_metrics: pods };
}
