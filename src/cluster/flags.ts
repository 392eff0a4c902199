/**
 * The cluster flags' values, apart from the etcd client (./store.ts) so that berthd reads its flags
 * without loading etcd3 (about half a second of a start here): the client loads only when a
 * cluster store is given.
 */
import { invalidArgument } from '../base/errors.js';

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** `etcd://HOST:PORT` -> the client's `http://HOST:PORT`. InvalidArgument for anything else. */
export function parseStoreUrl(url: string): string {
  const m = /^etcd:\/\/([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(url);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw invalidArgument(`--cluster-store ${url}: expected etcd://HOST:PORT`);
  return `http://${m[1]}:${m[2]}`;
}

/** `--cluster-advertise`: an IPv4 address (dockerd also took an interface name; berth wants the address). */
export function parseAdvertise(addr: string): string {
  const m = IPV4_RE.exec(addr.replace(/:\d+$/, ''));
  if (!m || m.slice(1).some((b) => Number(b) > 255))
    throw invalidArgument(`--cluster-advertise ${addr}: expected this host's IPv4 address`);
  return m[0];
}
