/**
 * The engine's side of content garbage collection (the collector itself is ../metadata/gc.ts,
 * composed by the image store): one collection in the background once the daemon has started,
 * so the orphans of a crash (blobs and layers a killed pull, build or load left, held only by a
 * dead run's lease) are reclaimed without holding up the start. On demand, `POST /images/prune`
 * and `POST /build/prune` (so `docker system prune`, `berth system prune`) collect too.
 *
 * Call `collectAtStart` after every holder of layers registered (the builder's cache retains
 * its layers from its constructor on): a collection before would take the build cache's layers.
 */
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import type { GcReport } from '../metadata/gc.js';

/** Starts the start-up collection; resolves with its report (null if it failed: logged, never thrown). */
export function collectAtStart(images: { collectGarbage(): Promise<GcReport> }): Promise<GcReport | null> {
  return images.collectGarbage().then(
    (r) => {
      log.info('content gc at start', { ...r });
      return r;
    },
    (e: unknown) => {
      log.error('content gc at start failed', { err: errorMessage(e) });
      return null;
    },
  );
}
