/**
 * What pull and push share while moving blobs: the short ids and progress bars of Docker's
 * stream, a byte meter that verifies size (and sha256 when asked) as bytes go by, and a pool that
 * moves a few blobs at a time.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { invalidArgument } from '../base/errors.js';

export interface Progress {
  (msg: {
    status?: string;
    id?: string;
    progressDetail?: { current?: number; total?: number };
    progress?: string;
  }): void;
}

/** The 12 hex digits Docker's progress lines name a blob by. */
export const shortId = (d: string): string => d.replace(/^sha256:/, '').slice(0, 12);

/** Docker's progress bar text: `[=====>     ] 12.3MB/45.6MB`. */
export function bar(current: number, total: number): string {
  const w = 50;
  const n = total > 0 ? Math.min(w, Math.floor((current / total) * w)) : 0;
  const size = (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)}MB` : `${(b / 1e3).toFixed(1)}kB`);
  return `[${'='.repeat(Math.max(0, n - 1))}${n ? '>' : ''}${' '.repeat(w - n)}] ${size(current)}/${size(total)}`;
}

/**
 * Reports `status` with a bar for a blob of `size` bytes: at the start, at the end, and in
 * between once per cell of the 50-cell bar (at least 512 KiB apart), so a large blob costs the
 * client ~50 redraws, not one per 512 KiB (a 128 MiB layer made 256 messages, each a write to
 * the client's socket and a redraw of its bars).
 */
export function meterReport(progress: Progress, status: string, id: string, size: number): (n: number) => void {
  const step = Math.max(512 * 1024, Math.ceil(size / 50));
  let last = -1;
  return (n) => {
    if (last >= 0 && n - last < step && n !== size) return;
    last = n;
    progress({ status, id, progressDetail: { current: n, total: size }, progress: bar(n, size) });
  };
}

/** The hash algorithm of a digest (sha256 or sha512, each with its exact encoding); others are refused. */
export function digestAlgorithm(digest: string): 'sha256' | 'sha512' {
  if (/^sha256:[a-f0-9]{64}$/.test(digest)) return 'sha256';
  if (/^sha512:[a-f0-9]{128}$/.test(digest)) return 'sha512';
  throw invalidArgument(`unsupported or malformed digest ${digest}`);
}

/** `bytes`' digest in the algorithm of `like`. */
export function digestOf(like: string, bytes: Buffer): string {
  const alg = digestAlgorithm(like);
  return `${alg}:${createHash(alg).update(bytes).digest('hex')}`;
}

/**
 * Passes bytes through, telling `onBytes` how many went by, and fails at the end when the size
 * (or, with `hashed`, the hash in the digest's own algorithm) is not `digest`'s. Without `hashed`
 * only the size is checked: for an uncompressed layer the content store computes the same hash
 * anyway (one pass, not two).
 */
export function verifier(d: { digest: string; size: number }, onBytes: (n: number) => void, hashed = true): Transform {
  const alg = digestAlgorithm(d.digest);
  const hash = hashed ? createHash(alg) : null;
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash?.update(chunk);
      n += chunk.length;
      // no more than the descriptor said reaches disk or memory
      if (n > d.size) return cb(invalidArgument(`blob ${d.digest} is longer than its ${d.size} bytes`));
      onBytes(n);
      cb(null, chunk);
    },
    flush(cb) {
      const got = hash ? `${alg}:${hash.digest('hex')}` : d.digest;
      if (got !== d.digest || n !== d.size)
        cb(invalidArgument(`blob ${d.digest} failed verification: got ${got} (${n} bytes, expected ${d.size})`));
      else cb();
    },
  });
}

/** Runs `work` on every item, `limit` at a time; rejects with the first failure once all stopped. */
export async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  const worker = async (): Promise<void> => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
