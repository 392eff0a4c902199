/**
 * Which requests wait for live restore, and for what (berthd answers while it restores its
 * containers after a restart; engine/restore-gate.ts). A request about one container
 * (`/containers/{ref}/...`: inspect, logs, attach, stop, kill, rm, exec, ...) waits for that
 * container only, which is restored at once if its turn has not come. A start or restart may join
 * other containers (links, `--network container:`, `--volumes-from`), and anything else that reads
 * or changes containers (the list, `info`, `system df`, create, networks, volumes, image removal)
 * waits for all of them. Only what no container's state can change answers at once: `/_ping`,
 * `/version`, `/events` (a subscription: restore's own events arrive on it), `/auth`, and reading
 * images.
 */
import type { RequestGate } from './http.js';

const FREE = /^\/(_ping|version|events|auth)$/;
const FREE_READS = /^\/(images|distribution)\//;
const CONTAINER = /^\/containers\/([^/]+)(?:\/([^/]+))?/;
/** `/containers/<x>` paths that are not about one container */
const NOT_ONE = new Set(['json', 'create', 'prune']);
const JOINS_OTHERS = new Set(['start', 'restart']);

export function restoreGate(system: { restored(ref: string | null): Promise<void> }): RequestGate {
  return (method, path) => {
    if (FREE.test(path) || ((method === 'GET' || method === 'HEAD') && FREE_READS.test(path))) return undefined;
    const m = CONTAINER.exec(path);
    if (m && !NOT_ONE.has(m[1]!) && !JOINS_OTHERS.has(m[2] ?? '')) {
      let ref: string;
      try {
        ref = decodeURIComponent(m[1]!);
      } catch {
        return undefined; // the route refuses the escape
      }
      return system.restored(ref);
    }
    return system.restored(null);
  };
}
