/** Builds the services berthd's engine is wired from: image stack (content, snapshots, images) and runtime. */
import { join } from 'node:path';
import type { Db } from '../metadata/db.js';
import { openImageStack } from '../image/index.js';
import { openRuntime } from '../runtime/index.js';
import type { RuntimeName } from '../runtime/types.js';
import type { Clock } from '../base/clock.js';

export async function openServices(o: {
  root: string;
  runRoot: string;
  db: Db;
  runtime: RuntimeName | undefined;
  criu?: string | undefined;
  conmon?: string | undefined;
  checkpointTimeoutMs?: number;
  clock: Clock;
}) {
  const stack = await openImageStack({ root: o.root, db: o.db, clock: o.clock });
  const runtime = await openRuntime({
    runDir: join(o.runRoot, 'runtime'),
    runtime: o.runtime,
    criu: o.criu,
    conmon: o.conmon,
    checkpointTimeoutMs: o.checkpointTimeoutMs,
    clock: o.clock,
  });
  return { images: stack.images, snapshots: stack.snapshots, mounter: stack.mounter, runtime };
}
