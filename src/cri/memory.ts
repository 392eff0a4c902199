/** Memory figures derived from a container's cgroup numbers, shared by ContainerStats and the metrics. */
import type { K8sStats } from '../engine/k8s.js';

type CgroupStats = NonNullable<K8sStats['cgroup']>;

/**
 * The working set as cAdvisor computes it (the kubelet's eviction signal): usage less the inactive
 * file cache, never below 0. v1: memory.usage_in_bytes − memory.stat `total_inactive_file` (the
 * hierarchy's); v2: memory.current − memory.stat `inactive_file` (always hierarchical there).
 */
export function workingSetBytes(g: CgroupStats): number {
  const m = g.memStats;
  return Math.max(0, g.memUsage - (m['total_inactive_file'] ?? m['inactive_file'] ?? 0));
}

/** Resident anonymous memory: v1 memory.stat `total_rss`, v2 `anon` (cAdvisor's RSS on each). */
export function rssBytes(g: CgroupStats): number {
  return g.memStats['total_rss'] ?? g.memStats['rss'] ?? g.memStats['anon'] ?? 0;
}
