/**
 * Session secrets for `RUN --mount=type=secret`. berth's builder takes a build's secrets as a
 * table (BuildRequest.secrets, read when a RUN step starts); BuildKit's clients hand them out one
 * by one through the session (moby.buildkit.secrets.v1.Secrets/GetSecret). So the ids the
 * Dockerfile asks for are read from the context tar as it streams by, and fetched from the session
 * before the builder sees the end of the context (and so before any step runs): `withSecrets`
 * holds the context's last chunk back until the table is filled.
 */
import { basename, posix } from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { parseDockerfile, type Instruction } from '../builder/parser.js';
import { parseMountFlag } from '../builder/run.js';
import { parseReference } from '../image/reference.js';
import { registryHostOf } from '../spec/distribution.js';

/** A Dockerfile larger than this is not scanned for secrets (the builder still reads it). */
const MAX_DOCKERFILE = 4 * 1024 * 1024;

/** The secret ids `RUN --mount=type=secret` asks for in `text` (id, or the target's base name). */
export function secretIds(text: string, file = 'Dockerfile'): string[] {
  const ids = new Set<string>();
  const visit = (ins: Instruction) => {
    if (ins.inner) visit(ins.inner);
    if (ins.name !== 'RUN') return;
    for (const f of ins.flags['mount'] ?? []) {
      try {
        const m = parseMountFlag(f);
        if (m['type'] === 'secret') ids.add(m['id'] || basename(m['target'] ?? ''));
      } catch {
        /* the builder reports a bad --mount itself */
      }
    }
  };
  try {
    for (const ins of parseDockerfile(text, file).instructions) visit(ins);
  } catch {
    /* the builder reports a bad Dockerfile itself */
  }
  ids.delete('');
  return [...ids];
}

const cleanName = (n: string) => posix.normalize(n.replace(/^\/+/, '')).replace(/^\.\//, '');

/** Reads `name`'s content out of a (plain or gzip) tar stream; null when absent or too large. */
function fileOfTar(input: Readable, name: string): Promise<string | null> {
  return new Promise((resolve) => {
    const want = cleanName(name);
    const ex = extract();
    let found: string | null = null;
    ex.on('entry', (h, body, next) => {
      if (found === null && cleanName(h.name) === want && (h.type === 'file' || h.type === 'contiguous-file')) {
        const chunks: Buffer[] = [];
        let n = 0;
        body.on('data', (d: unknown) => {
          const c = d as Buffer;
          n += c.length;
          if (n <= MAX_DOCKERFILE) chunks.push(c);
        });
        body.on('end', () => {
          if (n <= MAX_DOCKERFILE) found = Buffer.concat(chunks).toString('utf8');
          next();
        });
      } else {
        body.on('end', () => next());
        body.resume();
      }
    });
    let settled = false;
    const settle = () => {
      settled = true; // a broken tar or gzip: the builder's extractor reports it; the rest is only read past
      resolve(found);
    };
    ex.on('finish', settle);
    ex.on('error', settle);
    let head: Buffer | null = null;
    let sink: NodeJS.WritableStream = ex;
    input.on('data', (c: Buffer) => {
      if (settled) return;
      if (head === null) {
        head = c;
        if (c[0] === 0x1f && c[1] === 0x8b) {
          const gz = createGunzip();
          gz.on('error', settle);
          gz.pipe(ex);
          sink = gz;
        }
      }
      sink.write(c);
    });
    input.on('end', () => (settled ? undefined : sink.end()));
    input.on('error', settle);
  });
}

/**
 * The context `body` passed on unchanged, except that its end waits until `fill(dockerfileText)`
 * (the Dockerfile found in it, or null) has settled; a failing `fill` fails the stream.
 */
export function withSecrets(
  body: Readable,
  dockerfile: string,
  fill: (text: string | null) => Promise<void>,
): Readable {
  const side = new PassThrough();
  const found = fileOfTar(side, dockerfile);
  let held: Buffer | null = null;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      side.write(chunk);
      const prev = held;
      held = chunk;
      done(null, prev ?? undefined);
    },
    flush(done) {
      side.end();
      found.then(fill).then(
        () => done(null, held ?? undefined),
        (e: unknown) => done(e instanceof Error ? e : new Error(String(e))),
      );
    },
  });
  body.on('error', (e) => t.destroy(e));
  return body.pipe(t);
}

/**
 * The registry hosts of the images a Dockerfile names (FROM, `COPY --from=<image>`, `RUN --mount
 * from=<image>`), as BuildKit asks the session's Auth service for them: Docker Hub as
 * `registry-1.docker.io`. Stage names, `scratch` and references with unexpanded `$` are skipped.
 */
export function registryHosts(text: string, file = 'Dockerfile'): string[] {
  const hosts = new Set<string>();
  const stages = new Set<string>();
  const add = (ref: string | undefined) => {
    if (!ref || ref.includes('$') || ref === 'scratch' || stages.has(ref.toLowerCase()) || /^\d+$/.test(ref)) return;
    try {
      hosts.add(registryHostOf(parseReference(ref).name) ?? 'registry-1.docker.io');
    } catch {
      /* not a reference: the builder reports it */
    }
  };
  try {
    for (const ins of parseDockerfile(text, file).instructions) {
      if (ins.name === 'FROM') {
        add(ins.args[0]);
        if (ins.args[1]?.toLowerCase() === 'as' && ins.args[2]) stages.add(ins.args[2].toLowerCase());
      } else if (ins.name === 'COPY' || ins.name === 'ADD') add(ins.flags['from']?.[0]);
      else if (ins.name === 'RUN')
        for (const f of ins.flags['mount'] ?? []) {
          try {
            add(parseMountFlag(f)['from']);
          } catch {
            /* reported by the builder */
          }
        }
    }
  } catch {
    /* the builder reports a bad Dockerfile itself */
  }
  return [...hosts];
}
