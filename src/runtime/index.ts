import type { Runtime, RuntimeName } from './types.js';
import { detectHost } from './host.js';
import { ConmonRuntime } from './oci.js';

/** Detects the host (repairing the hybrid-cgroup trap) and returns the conmon-based runtime. */
export async function openRuntime(o: { runDir: string; runtime?: RuntimeName | undefined; criu?: string | undefined; checkpointTimeoutMs?: number | undefined }): Promise<Runtime> {
  const rt = new ConmonRuntime(o.runDir, detectHost(o.runtime, o.criu), o.checkpointTimeoutMs);
  await rt.init();
  return rt;
}
