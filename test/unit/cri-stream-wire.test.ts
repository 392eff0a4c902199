/**
 * The streaming server's pure parts: SPDY/3's dictionary, frames and header blocks, header
 * compression, websocket client frames, resize JSON, one-time tokens, status encoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { ManualClock } from '../../src/base/clock.js';
import { isBerthError } from '../../src/base/errors.js';
import { splitJsonObjects } from '../../src/cri/stream/resize.js';
import { encodeStatus, exitStatus, internalStatus, successStatus } from '../../src/cri/stream/status.js';
import { TokenCache } from '../../src/cri/stream/tokens.js';
import { SPDY3_DICTIONARY } from '../../src/cri/stream/spdy/dictionary.js';
import {
  SpdyProtocolError,
  decodeHeaderBlock,
  encodeData,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeSynReply,
  encodeSynStream,
  encodeWindowUpdate,
  parseFrame,
} from '../../src/cri/stream/spdy/frames.js';
import { HeaderCompressor, HeaderDecompressor } from '../../src/cri/stream/spdy/zlib.js';
import { encodeFrame, parseClientFrame, WebSocketProtocolError } from '../../src/cri/stream/ws-conn.js';

test("SPDY/3's dictionary is moby/spdystream's headerDictionary, byte for byte", () => {
  assert.equal(SPDY3_DICTIONARY.length, 1423);
  assert.equal(
    createHash('sha256').update(SPDY3_DICTIONARY).digest('hex'),
    '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02',
  );
});

test('every frame we encode parses back to itself', () => {
  const block = Buffer.from('blk');
  const cases: [Buffer, object][] = [
    [encodeData(5, Buffer.from('hi'), true), { type: 'data', streamId: 5, flags: 1, data: Buffer.from('hi') }],
    [encodeSynStream(3, 1, block, 2), { type: 'syn_stream', streamId: 3, assocId: 0, priority: 2, flags: 1, block }],
    [encodeSynReply(7, 0, block), { type: 'syn_reply', streamId: 7, flags: 0, block }],
    [encodeRstStream(9, 5), { type: 'rst_stream', streamId: 9, status: 5 }],
    [
      encodeSettings([{ id: 7, value: 1 << 20 }]),
      { type: 'settings', flags: 0, entries: [{ flags: 0, id: 7, value: 1 << 20 }] },
    ],
    [encodePing(0xfffffffe), { type: 'ping', id: 0xfffffffe }],
    [encodeGoAway(11, 1), { type: 'goaway', lastGoodStreamId: 11, status: 1 }],
    [encodeWindowUpdate(0, 0x7fffffff), { type: 'window_update', streamId: 0, delta: 0x7fffffff }],
  ];
  for (const [bytes, frame] of cases) {
    const r = parseFrame(Buffer.concat([bytes, Buffer.from('next')]), 1 << 20);
    assert.deepEqual(r?.frame, frame);
    assert.equal(r?.size, bytes.length);
    assert.equal(parseFrame(bytes.subarray(0, bytes.length - 1), 1 << 20), null, 'a partial frame waits');
  }
});

test('malformed frames are protocol errors, never out-of-range reads', () => {
  const bad = [
    Buffer.from([0x80, 0x02, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]), // version 2
    Buffer.from([0x80, 0x03, 0, 6, 0, 0, 0, 3, 0, 0, 0]), // PING of 3
    Buffer.from([0x80, 0x03, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1]), // RST_STREAM of 4
    Buffer.from([0x80, 0x03, 0, 1, 0, 0, 0, 2, 0, 0]), // SYN_STREAM of 2
    Buffer.from([0x80, 0x03, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // SYN_STREAM on 0
    Buffer.from([0x80, 0x03, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9]), // SETTINGS: 9 entries in 4 bytes
    Buffer.from([0x80, 0x03, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]), // WINDOW_UPDATE of 0
    Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), // DATA on 0
    Buffer.from([0, 0, 0, 1, 0, 0x10, 0, 0]), // 1 MiB frame over a 64 KiB limit
  ];
  for (const b of bad) assert.throws(() => parseFrame(b, 65536), SpdyProtocolError, b.toString('hex'));
  // Unknown control types are skipped whole (2.2.1).
  assert.deepEqual(parseFrame(Buffer.from([0x80, 3, 0, 10, 0, 0, 0, 1, 9]), 100), {
    frame: { type: 'unknown', frameType: 10 },
    size: 9,
  });
});

test('header blocks: round trip, NUL-joined values, and every bound checked', () => {
  const h = new Map([
    ['streamtype', ['stdout']],
    ['x', ['a', 'b']],
  ]);
  assert.deepEqual(decodeHeaderBlock(encodeHeaderBlock(h)), h);
  const good = encodeHeaderBlock(h);
  const bad = [
    good.subarray(0, good.length - 1),
    Buffer.concat([good, Buffer.from([0])]),
    encodeHeaderBlock(new Map([['', ['v']]])),
    Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 0x41, 0, 0, 0, 0]), // "A": not lowercase
    Buffer.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]), // name length past the end
    Buffer.from([0xff, 0xff, 0xff, 0xff]), // 4 billion pairs
    Buffer.concat([Buffer.from([0, 0, 0, 2]), good.subarray(4, 4 + 24), good.subarray(4, 4 + 24)]), // a name twice
  ];
  for (const b of bad) assert.throws(() => decodeHeaderBlock(b), SpdyProtocolError, b.toString('hex'));
});

test('header compression keeps one context across blocks and reads a real zlib peer', async () => {
  const c = new HeaderCompressor();
  const d = new HeaderDecompressor();
  const blocks = [0, 1, 2].map((i) => encodeHeaderBlock(new Map([['streamtype', [`s${i}`]]])));
  const compressed = await Promise.all(blocks.map((b) => c.compress(b)));
  assert.ok(compressed[1]!.length < compressed[0]!.length, 'later blocks reuse the context');
  for (let i = 0; i < 3; i++) assert.deepEqual(await d.decompress(compressed[i]!), blocks[i]);
  // An independent deflate with the dictionary (as Go's zlib.NewWriterLevelDict), sync-flushed.
  const peer = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 });
  const wire = await new Promise<Buffer>((resolve) => {
    const out: Buffer[] = [];
    peer.on('data', (x: Buffer) => out.push(x));
    peer.write(blocks[0]);
    peer.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve(Buffer.concat(out)));
  });
  assert.deepEqual(await new HeaderDecompressor().decompress(wire), blocks[0]);
  // A bomb: 1 MiB of zeros stops at the bound.
  const bomb = await new HeaderCompressor().compress(Buffer.alloc(1 << 20));
  await assert.rejects(new HeaderDecompressor(64 * 1024).decompress(bomb), SpdyProtocolError);
  await assert.rejects(new HeaderDecompressor().decompress(Buffer.from('not zlib at all')), SpdyProtocolError);
  c.close();
  d.close();
  peer.close();
});

test('websocket client frames: masked, sized, and control frames small and final', () => {
  const mask = (payload: Buffer, opcode = 2): Buffer => {
    const key = Buffer.from([1, 2, 3, 4]);
    const body = Buffer.from(payload.map((b, i) => b ^ key[i & 3]!));
    return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), key, body]);
  };
  assert.deepEqual(parseClientFrame(mask(Buffer.from('hey')))?.frame, {
    fin: true,
    opcode: 2,
    payload: Buffer.from('hey'),
  });
  assert.equal(parseClientFrame(mask(Buffer.from('hey')).subarray(0, 5)), null);
  const unmasked = Buffer.from([0x82, 0x01, 0x00]);
  assert.throws(() => parseClientFrame(unmasked), WebSocketProtocolError);
  assert.throws(() => parseClientFrame(Buffer.from([0xc2, 0x80, 0, 0, 0, 0])), WebSocketProtocolError); // RSV1
  assert.throws(() => parseClientFrame(Buffer.from([0x83, 0x80, 0, 0, 0, 0])), WebSocketProtocolError); // opcode 3
  const pingNotFinal = Buffer.from([0x09, 0x80, 0, 0, 0, 0]);
  assert.throws(() => parseClientFrame(pingNotFinal), WebSocketProtocolError);
  const huge = Buffer.from([0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]);
  assert.throws(
    () => parseClientFrame(huge),
    (e: unknown) => e instanceof WebSocketProtocolError && e.closeCode === 1009,
  );
  assert.deepEqual(
    encodeFrame(2, Buffer.alloc(70000)).subarray(0, 10),
    Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]),
  );
});

test('resize events: objects back to back, strings with braces, a bad value stops', () => {
  assert.deepEqual(splitJsonObjects('{"Width":1,"Height":2}\n{"Width":3'), {
    values: ['{"Width":1,"Height":2}'],
    rest: '{"Width":3',
  });
  assert.deepEqual(splitJsonObjects('{"a":"}{"} {"b":{"c":1}}').values, ['{"a":"}{"}', '{"b":{"c":1}}']);
  assert.throws(() => splitJsonObjects('x{}'));
});

test('tokens: one use, a minute of life, a bound on how many wait', () => {
  const clock = new ManualClock();
  const t = new TokenCache<string>(clock, 60_000, 3);
  const a = t.insert('a');
  assert.match(a, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(t.consume(a), 'a');
  assert.equal(t.consume(a), undefined, 'used');
  const b = t.insert('b');
  t.insert('c');
  t.insert('d');
  assert.throws(
    () => t.insert('e'),
    (e: unknown) => isBerthError(e, 'Unavailable'),
  );
  clock.advance(60_000);
  assert.equal(t.consume(b), undefined, 'expired');
  t.insert('f'); // the expired ones made room
  assert.equal(t.size, 1);
});

test('status encoding: JSON for v4, a failure message alone for v1-v3', () => {
  assert.equal(encodeStatus(successStatus(), true).toString(), '{"metadata":{},"status":"Success"}');
  assert.equal(encodeStatus(successStatus(), false).length, 0);
  const exit = exitStatus(['sh', '-c', 'exit 3'], 3);
  assert.equal(
    encodeStatus(exit, true).toString(),
    '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing ' +
      'command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",' +
      '"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}',
  );
  assert.equal(encodeStatus(internalStatus('boom'), false).toString(), 'Internal error occurred: boom');
});
