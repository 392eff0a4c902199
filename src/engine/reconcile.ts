/**
 * Live restore: what berthd does at start so that a `kill -9` of the daemon loses nothing.
 * - containers whose conmon still runs stay running (and attachable: conmon holds their stdio);
 * - containers that exited meanwhile get the exit code conmon wrote, then their restart policy;
 * - containers whose monitor vanished without an exit file (host reboot) are marked exited (255);
 * - container directories without a record (a crash mid-create) are unmounted and removed;
 * - containers with `always` / `unless-stopped` (not stopped by hand) are started again.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { netnsDel } from '../network/host.js';
import { errorMessage } from '../base/errors.js';
import { log } from '../base/log.js';
import type { Engine } from './engine.js';
import { isActive } from './state.js';

export async function reconcile(engine: Engine): Promise<void> {
  const { store, runtime, lifecycle } = engine;
  const toRestart: string[] = [];
  for (const rec of store.all()) {
    if (rec.state.status === 'removing') {
      await engine.discardFiles(rec.id);
      store.delete(rec);
      continue;
    }
    if (rec.state.status === 'restarting') {
      rec.state.status = 'exited';
      store.save(rec);
    }
    if (!isActive(rec.state.status)) {
      const named = engine.namedNetns(rec);
      if (named && existsSync(`/run/netns/${named}`)) await netnsDel(named); // its process died with the daemon away
      const p = rec.hostConfig.RestartPolicy?.Name;
      if (!rec.manuallyStopped && (p === 'always' || p === 'unless-stopped')) toRestart.push(rec.id);
      continue;
    }
    if (await runtime.monitorAlive(rec.id)) {
      const st = await runtime.state(rec.id).catch(() => null);
      if (st && (st.status === 'paused' || st.status === 'running') && st.status !== rec.state.status) {
        rec.state.status = st.status;
        store.save(rec);
      }
      engine.health.start(rec, true); // its probes go on
      continue;
    }
    const ex = await runtime.exitCode(rec.id);
    await lifecycle.onExit(rec.id, ex ? ex.code : 255);
    if (!ex) {
      rec.state.error = 'container monitor exited without recording an exit code';
      store.save(rec);
    }
  }
  await removeOrphans(engine);
  for (const id of toRestart) {
    const rec = store.find(id);
    if (rec) await lifecycle.start(rec).catch((e: unknown) => log.warn('restart at daemon start failed', { id, err: errorMessage(e) }));
  }
}

async function removeOrphans(engine: Engine): Promise<void> {
  const dir = join(engine.root, 'containers');
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (/^[a-f0-9]{64}$/.test(name) && !engine.store.find(name)) {
      log.info('removing leftover container files', { id: name });
      await engine.runtime.delete(name).catch(() => undefined);
      await engine.discardFiles(name);
    }
  }
}
