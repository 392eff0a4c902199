/**
 * A process in a running container with the container's defaults under the caller's overrides:
 * its environment, working dir and user (with `--group-add`), as dockerd's exec does. API execs
 * (exec.ts) and health probes (health.ts) both start here. Needs the exec role only.
 */
import type { ExecHandle, ExecOptions, ExecRuntime } from '../runtime/types.js';
import { resolveUser } from '../runtime/user.js';
import type { ContainerRecord } from './record.js';
import { mergeEnv } from './config.js';

export interface ExecHost {
  runtime: ExecRuntime;
  /** Where the container's rootfs is read (its /etc/passwd names the user): Engine.rootfsView. */
  rootfsView(rec: ContainerRecord): Promise<string>;
}

export type ExecRequest = { args: string[]; env: readonly string[]; cwd: string; user: string } & Pick<
  ExecOptions,
  'tty' | 'openStdin' | 'privileged' | 'detach'
>;

export async function execIn(h: ExecHost, rec: ContainerRecord, o: ExecRequest): Promise<ExecHandle> {
  const rootfs = await h.rootfsView(rec);
  return h.runtime.exec(rec.id, {
    args: o.args,
    env: mergeEnv(rec.config.Env ?? [], o.env),
    cwd: o.cwd || rec.config.WorkingDir || '/',
    user: await resolveUser(rootfs, o.user || rec.config.User || '', rec.hostConfig.GroupAdd ?? []),
    tty: o.tty,
    openStdin: o.openStdin,
    privileged: o.privileged,
    ...(o.detach !== undefined ? { detach: o.detach } : {}),
  });
}

/** A health probe: detached, no tty, no stdin, the container's user. */
export const probeIn = (h: ExecHost, rec: ContainerRecord, argv: string[]): Promise<ExecHandle> =>
  execIn(h, rec, {
    args: argv,
    env: [],
    cwd: '',
    user: '',
    tty: false,
    openStdin: false,
    privileged: false,
    detach: true,
  });
