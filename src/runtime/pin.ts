/**
 * Binary pinning (CVE-2019-5736 without a copy per call). crun and runc copy themselves (or
 * bind-mount themselves read-only) and re-execute on every create, start and exec, so that a
 * container cannot overwrite the host's binary through /proc/self/exe: a second exec and dynamic
 * link each time. Both skip that when their binary already sits on a read-only mount and
 * _LIBCONTAINER_CLONED_BINARY is set (their cloned_binary.c): the protection is the same, paid once
 * per daemon instead of per call.
 */
import { writeFileSync } from 'node:fs';
import { errorMessage } from '../base/errors.js';
import { isMountPoint, MNT_DETACH, MS_BIND, MS_RDONLY, MS_REMOUNT, mount, umount } from '../base/syscalls.js';
import { log } from '../base/log.js';

/** The environment of every runtime call: PATH and the variable that says the binary is pinned. */
export const RUNTIME_ENV = {
  PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
  _LIBCONTAINER_CLONED_BINARY: '1',
};

/**
 * Bind-mounts `real` read-only at `target`. Returns the pinned path, or the binary's own path
 * when bind mounts are not allowed here (the runtime then copies itself as usual).
 */
export function pinBinary(real: string, target: string): string {
  try {
    if (isMountPoint(target)) umount(target, MNT_DETACH); // a previous daemon's: re-pin the current binary
    writeFileSync(target, '', { mode: 0o755 });
    mount(real, target, '', MS_BIND, '');
    mount('', target, '', MS_REMOUNT | MS_BIND | MS_RDONLY, '');
    return target;
  } catch (e) {
    log.warn('cannot pin the runtime binary read-only; it will copy itself on each call', {
      binary: real,
      err: errorMessage(e),
    });
    return real;
  }
}
