import type { Clock } from '../base/clock.js';
import type { Runtime, RuntimeName } from './types.js';
import { detectHost } from './host.js';
import { ConmonRuntime } from './oci.js';

/** Detects the host (repairing the hybrid-cgroup trap) and returns the conmon-based runtime. */
export async function openRuntime(o: {
  runDir: string;
  runtime?: RuntimeName | undefined;
  criu?: string | undefined;
  /** conmon's path (default: scripts/conmon.sh's when it works, else the system's) */
  conmon?: string | undefined;
  checkpointTimeoutMs?: number | undefined;
  clock?: Clock;
}): Promise<Runtime> {
  const rt = new ConmonRuntime(o.runDir, await detectHost(o.runtime, o.criu, o.conmon), o.checkpointTimeoutMs, o.clock);
  await rt.init();
  return rt;
}
