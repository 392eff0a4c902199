/**
 * Test side of BuildKit sessions: a directory served the way the docker CLI serves it over fsutil's
 * DiffCopy, for buildkit.test.ts and buildkit-grpc.test.ts.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';

export interface SenderPacket {
  type: string;
  stat?: Record<string, unknown> | null;
  ID?: number;
  data?: Buffer;
}

/**
 * fsutil's sender side of DiffCopy (fsutil send.go), as the docker CLI serves a directory: a STAT
 * per entry in lexical walk order (Go os.FileMode in `mode`), an empty STAT, then the contents of
 * each file the receiver REQuests as DATA packets ended by an empty one; FIN answers FIN.
 */
export function fsutilSend(
  call: grpc.ServerDuplexStream<SenderPacket, SenderPacket>,
  root: string | undefined,
  include: string[] = [],
) {
  if (!root) {
    call.write({ type: 'PACKET_ERR', data: Buffer.from('no such directory') });
    call.end();
    return;
  }
  const entries: Array<{ rel: string; abs: string }> = [];
  const walk = (rel: string) => {
    for (const n of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (include.length && !include.includes(r)) continue;
      entries.push({ rel: r, abs: join(root, r) });
      if (lstatSync(join(root, r)).isDirectory()) walk(r);
    }
  };
  walk('');
  for (const e of entries) {
    const st = lstatSync(e.abs);
    const type = st.isDirectory() ? 0x80000000 : st.isSymbolicLink() ? 0x08000000 : 0;
    call.write({
      type: 'PACKET_STAT',
      stat: {
        path: e.rel,
        mode: (type | (st.mode & 0o777)) >>> 0,
        uid: 0,
        gid: 0,
        size: st.isFile() ? st.size : 0,
        modTime: Math.floor(st.mtimeMs) * 1e6,
        linkname: st.isSymbolicLink() ? readlinkSync(e.abs) : '',
      },
    });
  }
  call.write({ type: 'PACKET_STAT' });
  call.on('data', (p: SenderPacket) => {
    if (p.type === 'PACKET_REQ') {
      const data = readFileSync(entries[p.ID ?? 0]!.abs);
      for (let i = 0; i < data.length; i += 7000)
        call.write({ type: 'PACKET_DATA', ID: p.ID ?? 0, data: data.subarray(i, i + 7000) });
      call.write({ type: 'PACKET_DATA', ID: p.ID ?? 0 });
    } else if (p.type === 'PACKET_FIN') {
      call.write({ type: 'PACKET_FIN' });
      call.end();
    }
  });
}
