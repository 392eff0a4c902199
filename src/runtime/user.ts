/**
 * `--user` resolution against the container's own /etc/passwd and /etc/group (read inside the
 * rootfs, symlinks kept inside it), with Docker's error messages.
 */
import { promises as fsp } from 'node:fs';
import { invalidArgument } from '../base/errors.js';
import { resolveInRoot } from '../archive/container-fs.js';

async function readTable(rootfs: string, file: string): Promise<string[][]> {
  try {
    const text = await fsp.readFile(await resolveInRoot(rootfs, file), 'utf8');
    return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

const isNum = (s: string) => /^\d+$/.test(s);

export async function resolveUser(rootfs: string, spec: string): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec.split(':');
  const [passwd, group] = await Promise.all([readTable(rootfs, '/etc/passwd'), readTable(rootfs, '/etc/group')]);
  let uid: number;
  let gid: number;
  let name = '';
  let home = '/';
  if (userPart === '') {
    uid = 0;
    gid = 0;
    name = 'root';
    home = '/root';
  } else {
    const row = passwd.find((r) => (isNum(userPart) ? r[2] === userPart : r[0] === userPart));
    if (!row && !isNum(userPart)) throw invalidArgument(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = row ? Number(row[2]) : Number(userPart);
    gid = row ? Number(row[3]) : 0;
    name = row?.[0] ?? '';
    home = row?.[5] || '/';
  }
  if (groupPart !== undefined && groupPart !== '') {
    const row = group.find((r) => (isNum(groupPart) ? r[2] === groupPart : r[0] === groupPart));
    if (!row && !isNum(groupPart)) throw invalidArgument(`unable to find group ${groupPart}: no matching entries in group file`);
    gid = row ? Number(row[2]) : Number(groupPart);
  }
  const additionalGids = name
    ? group.filter((r) => (r[3] ?? '').split(',').includes(name)).map((r) => Number(r[2])).filter((g) => g !== gid)
    : [];
  return { uid, gid, additionalGids, home };
}
