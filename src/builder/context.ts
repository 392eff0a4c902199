/**
 * The build context: the client's tar unpacked into a private directory (archive/extract.ts: every
 * entry resolved inside it by the kernel), `.dockerignore` applied,
 * and the sources of COPY/ADD resolved inside a root (the context or another stage's filesystem)
 * without ever leaving it: `..` in a context source is an error, symlinks resolve inside the root.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import { join, posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { invalidArgument } from '../base/errors.js';
import { maybeGunzip } from '../archive/layer.js';
import { CONTEXT_POLICY, extractTar } from '../archive/extract.js';
import { resolveInRoot } from '../archive/container-fs.js';
import { IgnoreMatcher, cleanPath } from '../spec/dockerignore.js';

/**
 * Ends a tar stream properly: its last member padded to a 512-byte block, then the two zero
 * blocks. The docker CLI's `build -f -` context stops right after its last file's bytes (Go's
 * tar reader, dockerd's, accepts that; GNU tar calls it an unexpected EOF). A complete archive is
 * unchanged for tar: it stops at its own end marker.
 */
function completeTar(): Transform {
  let length = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      length += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      done(null, Buffer.alloc(((512 - (length % 512)) % 512) + 1024));
    },
  });
}

/** Unpacks a context tar (plain or gzip) into the empty directory `dir`. */
export async function receiveContext(input: Readable, dir: string): Promise<void> {
  const raw = await maybeGunzip(input);
  const tar = raw.pipe(completeTar());
  raw.on('error', (e) => tar.destroy(e)); // pipe() does not carry a source's error on
  await extractTar(tar, dir, CONTEXT_POLICY);
}

/** One file found for a source pattern. */
export interface SourceFile {
  /** path relative to the matched source (`''` for the source itself) */
  rel: string;
  abs: string;
  st: Stats;
}

/** A matched source: a file or a directory (with everything below it that is not ignored). */
export interface Source {
  /** the matched path, relative to the root */
  path: string;
  isDir: boolean;
  files: SourceFile[];
}

const GLOB = /[*?[]/;

/** Go's filepath.Match for one path element. */
function elementMatcher(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw invalidArgument(`syntax error in pattern: ${pattern}`);
      const cls = pattern.slice(i + 1, end);
      re += `[${cls.startsWith('^') || cls.startsWith('!') ? `^${cls.slice(1)}` : cls}]`;
      i = end;
    } else re += c.replace(/[.+()|{}$^]/, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

const NOT_IN_CONTEXT = 'file not found in build context or excluded by .dockerignore: ';

/** A directory files are copied from: the build context (with .dockerignore) or a stage/image filesystem. */
export class SourceRoot {
  constructor(
    readonly dir: string,
    private readonly ignore: IgnoreMatcher | null,
    /** the context refuses `..`; a stage's filesystem clamps it at its root like any path */
    private readonly isContext: boolean,
  ) {}

  /**
   * The build context as dockerd's legacy builder sees it: the client applied `.dockerignore`
   * when it made the tar (the docker CLI, berth's CLI, docker-py and dockerode all do), so the
   * daemon only removes `.dockerignore` and the Dockerfile when `.dockerignore` names them
   * (moby's `removeDockerfile`). Every other file the client sent is there for COPY.
   */
  static async context(dir: string, dockerfile = 'Dockerfile'): Promise<SourceRoot> {
    const text = await fsp.readFile(join(dir, '.dockerignore'), 'utf8').catch(() => '');
    const ignore = IgnoreMatcher.parse(text);
    for (const f of ['.dockerignore', dockerfile]) {
      const rel = cleanPath(f);
      if (rel && !rel.startsWith('..') && ignore.ignores(rel)) {
        const parent = await resolveInRoot(dir, posix.dirname(rel)); // no symlink leads it out of the context
        await fsp.rm(join(parent, posix.basename(rel)), { force: true }).catch(() => undefined);
      }
    }
    return new SourceRoot(dir, null, true);
  }

  ignored(rel: string): boolean {
    return rel !== '.' && rel !== '' && (this.ignore?.ignores(rel) ?? false);
  }

  /** Cleans a source path; in the context, one that leaves it is an error. */
  clean(src: string): string {
    const p = cleanPath(src.replace(/^\/+/, ''));
    if (this.isContext && (p === '..' || p.startsWith('../')))
      throw invalidArgument(`forbidden path outside the build context: ${src}`);
    return p;
  }

  /** The sources one COPY/ADD argument names: a path, or a glob matched element by element. */
  async resolve(src: string): Promise<Source[]> {
    const p = this.clean(src);
    if (!GLOB.test(p)) {
      const found = await this.sourceAt(p);
      if (!found)
        // dockerd's words: from the context, and from a stage or image (COPY --from)
        throw invalidArgument(`${this.isContext ? NOT_IN_CONTEXT : ''}stat ${p}: file does not exist`);
      return [found];
    }
    const parts = p.split('/').map(elementMatcher);
    const out: Source[] = [];
    const walk = async (rel: string, depth: number): Promise<void> => {
      const abs = rel === '.' ? this.dir : join(this.dir, rel);
      let names: string[];
      try {
        names = (await fsp.readdir(abs)).sort();
      } catch {
        return;
      }
      for (const n of names) {
        if (!parts[depth]!.test(n)) continue;
        const childRel = rel === '.' ? n : `${rel}/${n}`;
        if (depth === parts.length - 1) {
          const s = await this.sourceAt(childRel);
          if (s) out.push(s);
        } else await walk(childRel, depth + 1);
      }
    };
    await walk('.', 0);
    if (out.length === 0)
      throw invalidArgument(
        `no source files were specified: ${src} matches nothing in the build context (or only excluded files)`,
      );
    return out;
  }

  private async sourceAt(rel: string): Promise<Source | null> {
    if (this.ignored(rel) && !(this.ignore?.hasExclusions ?? false)) return null;
    const abs = await resolveInRoot(this.dir, rel);
    let st: Stats;
    try {
      st = await fsp.stat(abs); // the source itself is followed when it is a symlink
    } catch {
      return null;
    }
    if (!st.isDirectory()) return this.ignored(rel) ? null : { path: rel, isDir: false, files: [{ rel: '', abs, st }] };
    const files: SourceFile[] = [{ rel: '', abs, st }];
    const walk = async (dirAbs: string, dirRel: string): Promise<void> => {
      for (const n of (await fsp.readdir(dirAbs)).sort()) {
        const childAbs = join(dirAbs, n);
        const childRel = dirRel ? `${dirRel}/${n}` : n;
        const ctxRel = rel === '.' ? childRel : `${rel}/${childRel}`;
        const cst = await fsp.lstat(childAbs);
        const skip = this.ignored(ctxRel);
        if (!skip) files.push({ rel: childRel, abs: childAbs, st: cst });
        if (cst.isDirectory() && (!skip || this.ignore?.hasExclusions)) await walk(childAbs, childRel);
      }
    };
    await walk(abs, '');
    if (files.length === 1 && this.ignored(rel)) return null;
    return { path: rel, isDir: true, files };
  }
}

/** sha256 of a file's content (streamed). */
export function hashFile(abs: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(abs)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Whether `abs` starts like a tar archive ADD extracts: gzip, bzip2, xz or a plain tar header. */
export async function archiveKind(abs: string): Promise<'gzip' | 'bzip2' | 'xz' | 'tar' | null> {
  const fh = await fsp.open(abs, 'r');
  try {
    const b = Buffer.alloc(512);
    const { bytesRead } = await fh.read(b, 0, 512, 0);
    if (bytesRead >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (bytesRead >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (bytesRead >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (bytesRead === 512 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return null;
  } finally {
    await fh.close();
  }
}

/** A context-relative path for messages and keys: posix, no leading `./`. */
export const displayPath = (p: string): string => posix.normalize(p).replace(/^\.\//, '');
