/**
 * Image layers <-> overlay directories.
 * - applyLayer: a layer tar (plain or gzip) unpacked into an empty layer dir, with OCI whiteouts
 *   turned into overlayfs's form: `.wh.<name>` -> char device 0/0 `<name>`, `.wh..wh..opq` ->
 *   xattr `trusted.overlay.opaque=y` on the dir (image-spec "Whiteouts", overlayfs docs).
 * - packUpper: the reverse, a layer tar from a container's upper dir.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { Readable, Writable } from 'node:stream';
import { getXattr } from '../base/syscalls.js';
import { packTree } from './pack.js';
import { extractTar, LAYER_POLICY, OPAQUE, WH } from './extract.js';
import { TarFile } from './tar-reader.js';

const OPAQUE_XATTR = 'trusted.overlay.opaque';

/** Paths the engine bind-mounts into containers: never part of a committed layer. */
const BIND_TARGETS = new Set(['etc/hosts', 'etc/hostname', 'etc/resolv.conf']);

/** Whether a stream starts with gzip's magic; what was read to tell is put back. */
export async function isGzip(input: Readable): Promise<boolean> {
  const first: Buffer | null = await new Promise((resolve, reject) => {
    const onReadable = () => {
      cleanup();
      resolve((input.read(2) as Buffer | null) ?? (input.read() as Buffer | null));
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onErr = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onErr);
    };
    input.once('readable', onReadable);
    input.once('end', onEnd);
    input.once('error', onErr);
  });
  if (!first) return false;
  input.unshift(first);
  return first[0] === 0x1f && first[1] === 0x8b;
}

export async function maybeGunzip(input: Readable): Promise<Readable> {
  if (!(await isGzip(input))) return input;
  const gz = createGunzip();
  input.on('error', (e) => gz.destroy(e)); // pipe() would not carry the error (a failed verification) on
  return input.pipe(gz);
}

/**
 * Unpacks a layer tar file (plain or gzip) into the directory `dest` (empty, or a container's
 * upper dir for an imported checkpoint), every entry resolved inside `dest` by the kernel and
 * OCI whiteouts turned into overlayfs's form (see extract.ts for the rules). A bad layer is
 * InvalidArgument; nothing outside `dest` is touched.
 */
export async function applyLayer(tarPath: string, dest: string): Promise<void> {
  const fd = openSync(tarPath, 'r');
  try {
    const magic = Buffer.alloc(2);
    const gz = readSync(fd, magic, 0, 2, 0) === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
    // a plain tar (every layer in content): file bodies copied by the kernel, not through JS
    if (!gz) return await extractTar(new TarFile(fd), dest, LAYER_POLICY);
  } finally {
    closeSync(fd);
  }
  await extractTar(await maybeGunzip(createReadStream(tarPath)), dest, LAYER_POLICY);
}

/** Writes the layer tar of an overlay upper dir: whiteouts become `.wh.` entries. */
export async function packUpper(upper: string, out: Writable): Promise<void> {
  await packTree(upper, out, {
    transform: (e) => {
      if (BIND_TARGETS.has(e.name)) return { skip: true };
      if (e.st.isCharacterDevice() && e.st.rdev === 0) {
        const name = join(dirname(e.name), `${WH}${basename(e.name)}`).replace(/^\.\//, '');
        return { replace: { name, type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: e.st.mtime } };
      }
      if (e.st.isDirectory() && getXattr(e.abs, OPAQUE_XATTR) === 'y')
        return {
          extra: [
            { name: `${e.name}/${OPAQUE}`, type: 'file', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: e.st.mtime },
          ],
        };
      return {};
    },
  });
}
