/**
 * A streaming tar reader (POSIX ustar, pax `x`/`g` records, GNU `L`/`K` long names), written for
 * untrusted input: every header's checksum is verified, long-name and pax records are capped,
 * names are kept as the archive's bytes (pax values, xattrs included, stay binary), and an
 * archive that ends inside a header or a member's data is an error (`truncated`), never a short
 * file. A TarFile source also copies file bodies kernel-side (copy_file_range). Entries come one at a time; the caller reads (or skips) an entry's body before asking for
 * the next one.
 */
import { read as fsRead, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { invalidArgument } from '../base/errors.js';
import { copyFileRangeAsync } from '../base/syscalls.js';

export type TarType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarHeader {
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* records of the entry's pax header, values as bytes. */
  xattrs: Map<string, Buffer>;
}

/** Limits for one archive (read per call; the defaults suit image layers). */
export interface TarLimits {
  /** Longest pax or GNU long-name record, bytes. */
  maxRecord: number;
}

const BLOCK = 512;
const TYPES: Record<string, TarType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};

/**
 * Exact byte counts out of a source, through a buffer that `fill` tops up (a stream's chunks, or
 * reads of a file): what the tar parser reads headers and bodies with.
 */
abstract class Buffered {
  protected buf: Buffer = Buffer.alloc(0);
  protected done = false;
  /** Bytes consumed so far (for messages). */
  offset = 0;

  /** Fills the buffer to at least `n` bytes; false when the source ended first. */
  protected abstract fill(n: number): Promise<boolean>;

  /** Exactly `n` bytes; null only when the stream ended before the first byte of them. */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.buf.length === 0) return null;
      throw truncated(this.offset + this.buf.length);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.offset += n;
    return out;
  }

  /** Up to `n` bytes as they arrive (at least one); throws when the stream ended first. */
  async chunk(n: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.fill(1))) throw truncated(this.offset);
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.offset += out.length;
    return out;
  }
}

/** Pulls exact byte counts out of a stream (without buffering more than a chunk ahead). */
class ByteSource extends Buffered {
  private readonly it: AsyncIterator<Buffer | string>;

  constructor(input: Readable) {
    super();
    this.it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  }

  /** Fills the buffer to at least `n` bytes; false when the stream ended first. */
  protected async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
        this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      }
    }
    return this.buf.length >= n;
  }

  /** Stops reading (the stream is left to its owner to destroy). */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

/** How much a file source reads at a time for headers and small bodies. */
const READ_AHEAD = 64 * 1024;
/** The most one copy_file_range call moves (each runs on a libuv worker: keep them short). */
const COPY_STEP = 8 << 20;

/**
 * A tar file open for reading (its fd, at its start; the caller owns and closes it). Headers and
 * small bodies are read through a buffer; a regular file's body goes from this file to the
 * extracted file with copy_file_range(2) (`copyTo`): no byte of it passes through the event loop.
 */
export class TarFile extends Buffered {
  /** copy_file_range failed here once (another filesystem, no support): copy through userspace. */
  private noCopy = false;

  constructor(readonly fd: number) {
    super();
  }

  protected async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.done) {
      const want = Math.max(n - this.buf.length, READ_AHEAD);
      const b = Buffer.allocUnsafe(want);
      const got = await new Promise<number>((resolve, reject) =>
        fsRead(this.fd, b, 0, want, null, (e, k) => (e ? reject(e) : resolve(k))),
      );
      if (got === 0) this.done = true;
      else this.buf = this.buf.length ? Buffer.concat([this.buf, b.subarray(0, got)]) : b.subarray(0, got);
    }
    return this.buf.length >= n;
  }

  /**
   * Writes the next `n` bytes into `dst` at its position: what the buffer holds first, the rest
   * by copy_file_range from this file's position (which is the buffer's end). `onBytes` counts
   * them. An archive that ends first is `truncated`.
   */
  async copyTo(dst: number, n: number, onBytes: (k: number) => void): Promise<void> {
    while (n > 0) {
      if (this.buf.length > 0 || this.noCopy) {
        const c = await this.chunk(n);
        for (let off = 0; off < c.length;) off += writeSync(dst, c, off, c.length - off);
        n -= c.length;
        onBytes(c.length);
        continue;
      }
      const k = await copyFileRangeAsync(this.fd, dst, Math.min(n, COPY_STEP));
      if (k < 0) this.noCopy = true;
      else if (k === 0) throw truncated(this.offset);
      else {
        n -= k;
        this.offset += k;
        onBytes(k);
      }
    }
  }

  async close(): Promise<void> {}
}

const truncated = (at: number) => invalidArgument(`truncated tar archive (unexpected end of data at byte ${at})`);

function cstr(b: Buffer, off: number, len: number): Buffer {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return z < 0 ? s : s.subarray(0, z);
}

/** A numeric header field: octal text, or GNU base-256 (high bit set). */
function num(b: Buffer, off: number, len: number, field: string): number {
  const s = b.subarray(off, off + len);
  if (s[0]! & 0x80) {
    if (s[0] === 0xff) throw invalidArgument(`invalid tar header: negative ${field}`);
    let v = s[0]! & 0x7f;
    for (let i = 1; i < s.length; i++) {
      v = v * 256 + s[i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw invalidArgument(`invalid tar header: ${field} too large`);
    }
    return v;
  }
  const t = s.toString('latin1').replace(/\0.*$/s, '').trim();
  if (t === '') return 0;
  if (!/^[0-7]+$/.test(t)) throw invalidArgument(`invalid tar header: bad ${field} field`);
  return parseInt(t, 8);
}

function checksumOk(h: Buffer): boolean {
  const want = num(h, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 32 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

/**
 * Whether `block` is a tar header (512 bytes, valid checksum, not the end marker): how ADD tells
 * an archive from a file, as dockerd does.
 */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < BLOCK || block.subarray(0, BLOCK).every((c) => c === 0)) return false;
  try {
    return checksumOk(block.subarray(0, BLOCK));
  } catch {
    return false;
  }
}

/** pax records `<len> <key>=<value>\n`; values kept as bytes. */
function parsePax(b: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let p = 0;
  while (p < b.length) {
    if (b[p] === 0) break;
    const sp = b.indexOf(0x20, p);
    if (sp < 0) throw invalidArgument('invalid pax header');
    const len = Number(b.subarray(p, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= sp - p + 1 || p + len > b.length || b[p + len - 1] !== 0x0a)
      throw invalidArgument('invalid pax header');
    const rec = b.subarray(sp + 1, p + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw invalidArgument('invalid pax header');
    out.set(rec.subarray(0, eq).toString('utf8'), rec.subarray(eq + 1));
    p += len;
  }
  return out;
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's data, in chunks; must be consumed (or skipped) before the next entry. */
  body(): AsyncGenerator<Buffer>;
  /** Reading a TarFile: writes the (unread) data into the file `fd` without passing it through JS. */
  copyTo?: (fd: number) => Promise<void>;
}

/**
 * The entries of a tar stream. Ends at the end-of-archive marker (or at end of input on a block
 * boundary, as Go's archive/tar allows); anything else malformed throws InvalidArgument.
 */
export async function* readTar(
  input: Readable | TarFile,
  limits: TarLimits = { maxRecord: 1 << 20 },
): AsyncGenerator<TarEntry> {
  const src = input instanceof TarFile ? input : new ByteSource(input);
  let globalPax = new Map<string, Buffer>();
  let pax = new Map<string, Buffer>();
  let longName: Buffer | null = null;
  let longLink: Buffer | null = null;
  try {
    for (;;) {
      const h = await src.read(BLOCK);
      if (!h) return; // end of input between members
      if (h.every((c) => c === 0)) return; // end-of-archive marker (what follows is padding)
      if (!checksumOk(h))
        throw invalidArgument(
          `invalid tar header at byte ${src.offset - BLOCK} (bad checksum): not a tar archive, or a compression berth does not read`,
        );
      const flag = String.fromCharCode(h[156]!);
      const size = num(h, 124, 12, 'size');
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (size > limits.maxRecord)
          throw invalidArgument(
            `tar ${flag === 'L' || flag === 'K' ? 'long name' : 'pax'} record of ${size} bytes (at most ${limits.maxRecord})`,
          );
        const data = await src.read(padded);
        if (!data && size > 0) throw truncated(src.offset);
        const rec = (data ?? Buffer.alloc(0)).subarray(0, size);
        if (flag === 'x') pax = new Map([...pax, ...parsePax(rec)]);
        else if (flag === 'g') globalPax = new Map([...globalPax, ...parsePax(rec)]);
        else if (flag === 'L') longName = cstr(rec, 0, rec.length);
        else longLink = cstr(rec, 0, rec.length);
        continue;
      }
      const type = TYPES[flag];
      if (!type)
        throw invalidArgument(
          `unsupported tar entry type '${flag.replace(/[^\x20-\x7e]/g, '?')}' at byte ${src.offset - BLOCK}`,
        );
      const all = new Map([...globalPax, ...pax]);
      const ustar = h.subarray(257, 262).toString('latin1') === 'ustar';
      const prefix = ustar ? cstr(h, 345, 155) : Buffer.alloc(0);
      const rawName =
        all.get('path') ??
        longName ??
        (prefix.length ? Buffer.concat([prefix, Buffer.from('/'), cstr(h, 0, 100)]) : cstr(h, 0, 100));
      const rawLink = all.get('linkpath') ?? longLink ?? cstr(h, 157, 100);
      const paxNum = (k: string, def: number, negative = false): number => {
        const v = all.get(k);
        if (v === undefined) return def;
        const n = Number(v.toString('latin1'));
        if (!Number.isFinite(n) || (n < 0 && !negative) || n > Number.MAX_SAFE_INTEGER)
          throw invalidArgument(`invalid pax ${k}`);
        return Math.max(n, 0); // a time before 1970 becomes 1970
      };
      if (all.has('GNU.sparse.major') || all.has('GNU.sparse.size') || all.has('GNU.sparse.map'))
        throw invalidArgument('sparse tar entries are not supported');
      const realSize = type === 'file' ? Math.floor(paxNum('size', size)) : 0;
      const xattrs = new Map<string, Buffer>();
      for (const [k, v] of all) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
      const header: TarHeader = {
        name: rawName.toString('utf8'),
        type,
        mode: num(h, 100, 8, 'mode') & 0o7777,
        uid: paxNum('uid', num(h, 108, 8, 'uid')),
        gid: paxNum('gid', num(h, 116, 8, 'gid')),
        size: realSize,
        mtimeMs: paxNum('mtime', num(h, 136, 12, 'mtime'), true) * 1000,
        linkname: rawLink.toString('utf8'),
        devmajor: ustar ? num(h, 329, 8, 'devmajor') : 0,
        devminor: ustar ? num(h, 337, 8, 'devminor') : 0,
        xattrs,
      };
      pax = new Map();
      longName = null;
      longLink = null;
      // Only regular files carry data: the size of a header-only entry (link, symlink, directory,
      // device, FIFO) is ignored and the next header follows at once, as Go's archive/tar reads it.
      const dataLen = type === 'file' ? realSize : 0;
      let left = dataLen;
      const body = async function* (): AsyncGenerator<Buffer> {
        while (left > 0) {
          const c = await src.chunk(left);
          left -= c.length;
          if (type === 'file') yield c;
        }
      };
      const copyTo =
        src instanceof TarFile && type === 'file'
          ? (fd: number) => src.copyTo(fd, left, (k) => (left -= k))
          : undefined;
      yield { header, body, ...(copyTo ? { copyTo } : {}) };
      while (left > 0) left -= (await src.chunk(left)).length; // what the caller did not read
      const pad = Math.ceil(dataLen / BLOCK) * BLOCK - dataLen;
      if (pad > 0 && !(await src.read(pad))) throw truncated(src.offset);
    }
  } finally {
    await src.close();
  }
}
