import type { Runtime, RuntimeName } from './types.js';
import { detectHost } from './host.js';
import { ConmonRuntime } from './oci.js';

/** Detects the host (repairing the hybrid-cgroup trap) and returns the conmon-based runtime. */
export async function openRuntime(o: { runDir: string; runtime?: RuntimeName }): Promise<Runtime> {
  const rt = new ConmonRuntime(o.runDir, detectHost(o.runtime));
  await rt.init();
  return rt;
}
