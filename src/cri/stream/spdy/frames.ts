/**
 * SPDY/3.1 frames (SPDY Protocol Draft 3.1, section 2.2 and 2.6), pure: bytes in, typed frames out,
 * and back. Header blocks are handled here uncompressed (2.6.10); zlib is the session's business
 * because its context spans the whole connection. Every length is checked against the buffer before
 * it is read: a malformed frame is a `SpdyProtocolError`, never an out-of-range read.
 */

export const SPDY_VERSION = 3;

export const enum FrameType {
  SynStream = 1,
  SynReply = 2,
  RstStream = 3,
  Settings = 4,
  Ping = 6,
  GoAway = 7,
  Headers = 8,
  WindowUpdate = 9,
}

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

/** RST_STREAM status codes (2.6.3). */
export const RstStatus = {
  ProtocolError: 1,
  InvalidStream: 2,
  RefusedStream: 3,
  UnsupportedVersion: 4,
  Cancel: 5,
  InternalError: 6,
  FlowControlError: 7,
  StreamInUse: 8,
  StreamAlreadyClosed: 9,
  FrameTooLarge: 11,
} as const;

/** GOAWAY status codes (2.6.6). */
export const GoAwayStatus = { Ok: 0, ProtocolError: 1, InternalError: 2 } as const;

/** SETTINGS ids (2.6.4). */
export const SETTINGS_INITIAL_WINDOW_SIZE = 7;

/** The default window of every stream and of the session (SPDY/3.1, 2.6.8). */
export const DEFAULT_WINDOW = 65536;
/** Largest length the 24-bit field can carry. */
export const MAX_FRAME_LENGTH = 0xffffff;

export type Frame =
  | { type: 'data'; streamId: number; flags: number; data: Buffer }
  | { type: 'syn_stream'; streamId: number; assocId: number; priority: number; flags: number; block: Buffer }
  | { type: 'syn_reply'; streamId: number; flags: number; block: Buffer }
  | { type: 'rst_stream'; streamId: number; status: number }
  | { type: 'settings'; flags: number; entries: { flags: number; id: number; value: number }[] }
  | { type: 'ping'; id: number }
  | { type: 'goaway'; lastGoodStreamId: number; status: number }
  | { type: 'headers'; streamId: number; flags: number; block: Buffer }
  | { type: 'window_update'; streamId: number; delta: number }
  /** A control frame type SPDY/3.1 does not define (CREDENTIAL, 10, among them): ignored (2.2.1). */
  | { type: 'unknown'; frameType: number };

export class SpdyProtocolError extends Error {
  override readonly name = 'SpdyProtocolError';
}

const u31 = (b: Buffer, off: number): number => b.readUInt32BE(off) & 0x7fffffff;

function need(len: number, min: number, what: string, exact = false): void {
  if (exact ? len !== min : len < min) throw new SpdyProtocolError(`${what} frame with length ${len}`);
}

/**
 * Reads one frame from the front of `buf`: the frame and its size in bytes, or null when `buf`
 * does not hold a whole frame yet. `maxLength` bounds what a peer can make us buffer.
 */
export function parseFrame(buf: Buffer, maxLength: number): { frame: Frame; size: number } | null {
  if (buf.length < 8) return null;
  const len = buf.readUIntBE(5, 3);
  if (len > maxLength) throw new SpdyProtocolError(`frame of ${len} bytes is over the limit of ${maxLength}`);
  if (buf.length < 8 + len) return null;
  const flags = buf[4]!;
  const p = buf.subarray(8, 8 + len);
  const size = 8 + len;
  if ((buf[0]! & 0x80) === 0) {
    const streamId = u31(buf, 0);
    if (streamId === 0) throw new SpdyProtocolError('data frame on stream 0');
    return { frame: { type: 'data', streamId, flags, data: p }, size };
  }
  const version = buf.readUInt16BE(0) & 0x7fff;
  if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version}`);
  const type = buf.readUInt16BE(2);
  switch (type) {
    case FrameType.SynStream: {
      need(len, 10, 'SYN_STREAM');
      const streamId = u31(p, 0);
      if (streamId === 0) throw new SpdyProtocolError('SYN_STREAM for stream 0');
      const frame: Frame = {
        type: 'syn_stream',
        streamId,
        assocId: u31(p, 4),
        priority: p[8]! >> 5,
        flags,
        block: p.subarray(10),
      };
      return { frame, size };
    }
    case FrameType.SynReply:
      need(len, 4, 'SYN_REPLY');
      return { frame: { type: 'syn_reply', streamId: u31(p, 0), flags, block: p.subarray(4) }, size };
    case FrameType.RstStream:
      need(len, 8, 'RST_STREAM', true);
      return { frame: { type: 'rst_stream', streamId: u31(p, 0), status: p.readUInt32BE(4) }, size };
    case FrameType.Settings: {
      need(len, 4, 'SETTINGS');
      const n = p.readUInt32BE(0);
      if (len !== 4 + 8 * n) throw new SpdyProtocolError(`SETTINGS frame of ${len} bytes for ${n} entries`);
      const entries = [];
      for (let i = 0; i < n; i++) {
        const o = 4 + 8 * i;
        entries.push({ flags: p[o]!, id: p.readUIntBE(o + 1, 3), value: p.readUInt32BE(o + 4) });
      }
      return { frame: { type: 'settings', flags, entries }, size };
    }
    case FrameType.Ping:
      need(len, 4, 'PING', true);
      return { frame: { type: 'ping', id: p.readUInt32BE(0) }, size };
    case FrameType.GoAway:
      need(len, 8, 'GOAWAY', true);
      return { frame: { type: 'goaway', lastGoodStreamId: u31(p, 0), status: p.readUInt32BE(4) }, size };
    case FrameType.Headers:
      need(len, 4, 'HEADERS');
      return { frame: { type: 'headers', streamId: u31(p, 0), flags, block: p.subarray(4) }, size };
    case FrameType.WindowUpdate: {
      need(len, 8, 'WINDOW_UPDATE', true);
      const delta = u31(p, 4);
      if (delta === 0) throw new SpdyProtocolError('WINDOW_UPDATE with a delta of 0');
      return { frame: { type: 'window_update', streamId: u31(p, 0), delta }, size };
    }
    default:
      return { frame: { type: 'unknown', frameType: type }, size };
  }
}

function control(type: FrameType, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME_LENGTH) throw new SpdyProtocolError('control frame too large');
  const h = Buffer.alloc(8);
  h.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt32BE((((flags & 0xff) << 24) | payload.length) >>> 0, 4);
  return Buffer.concat([h, payload]);
}

export function encodeData(streamId: number, data: Buffer, fin: boolean): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(streamId & 0x7fffffff, 0);
  h.writeUInt32BE((((fin ? FLAG_FIN : 0) << 24) | data.length) >>> 0, 4);
  return data.length === 0 ? h : Buffer.concat([h, data]);
}

export function encodeSynStream(streamId: number, flags: number, block: Buffer, priority = 0): Buffer {
  const p = Buffer.alloc(10);
  p.writeUInt32BE(streamId, 0);
  p[8] = (priority & 7) << 5;
  return control(FrameType.SynStream, flags, Buffer.concat([p, block]));
}

export function encodeSynReply(streamId: number, flags: number, block: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(streamId, 0);
  return control(FrameType.SynReply, flags, Buffer.concat([p, block]));
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(streamId, 0);
  p.writeUInt32BE(status, 4);
  return control(FrameType.RstStream, 0, p);
}

export function encodeSettings(entries: { id: number; value: number; flags?: number }[]): Buffer {
  const p = Buffer.alloc(4 + 8 * entries.length);
  p.writeUInt32BE(entries.length, 0);
  entries.forEach((e, i) => {
    p[4 + 8 * i] = e.flags ?? 0;
    p.writeUIntBE(e.id, 5 + 8 * i, 3);
    p.writeUInt32BE(e.value, 8 + 8 * i);
  });
  return control(FrameType.Settings, 0, p);
}

export function encodePing(id: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(id, 0);
  return control(FrameType.Ping, 0, p);
}

export function encodeGoAway(lastGoodStreamId: number, status: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastGoodStreamId, 0);
  p.writeUInt32BE(status, 4);
  return control(FrameType.GoAway, 0, p);
}

export function encodeWindowUpdate(streamId: number, delta: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(streamId, 0);
  p.writeUInt32BE(delta & 0x7fffffff, 4);
  return control(FrameType.WindowUpdate, 0, p);
}

/** Header names and their values, names lowercased (2.6.10: names are lowercase on the wire). */
export type HeaderMap = Map<string, string[]>;

/** An uncompressed name/value header block (2.6.10). Several values of one name are joined by NUL. */
export function encodeHeaderBlock(headers: HeaderMap): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(headers.size, 0);
  parts.push(count);
  for (const [name, values] of headers) {
    for (const s of [name.toLowerCase(), values.join('\0')]) {
      const b = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length, 0);
      parts.push(len, b);
    }
  }
  return Buffer.concat(parts);
}

/** Parses an uncompressed header block; `maxPairs` bounds what a peer can make us allocate. */
export function decodeHeaderBlock(block: Buffer, maxPairs = 256): HeaderMap {
  let off = 0;
  const take = (): string => {
    if (off + 4 > block.length) throw new SpdyProtocolError('truncated header block');
    const len = block.readUInt32BE(off);
    off += 4;
    if (len > block.length - off) throw new SpdyProtocolError('header length past the end of the block');
    const s = block.toString('utf8', off, off + len);
    off += len;
    return s;
  };
  if (block.length < 4) throw new SpdyProtocolError('truncated header block');
  const n = block.readUInt32BE(0);
  off = 4;
  if (n > maxPairs) throw new SpdyProtocolError(`header block with ${n} pairs`);
  const out: HeaderMap = new Map();
  for (let i = 0; i < n; i++) {
    const name = take();
    const value = take();
    if (name.length === 0) throw new SpdyProtocolError('empty header name');
    if (name !== name.toLowerCase()) throw new SpdyProtocolError(`header name ${JSON.stringify(name)} not lowercase`);
    if (out.has(name)) throw new SpdyProtocolError(`header ${JSON.stringify(name)} twice`);
    out.set(name, value.split('\0'));
  }
  if (off !== block.length) throw new SpdyProtocolError('bytes after the header block');
  return out;
}
