/**
 * `--user` resolution against the container's own /etc/passwd and /etc/group (read inside the
 * rootfs, symlinks kept inside it), with Docker's error messages. A user or group that is not
 * there is dockerd's 500 (an untyped error from its spec's making), for a start and an exec alike.
 */
import { internal } from '../base/errors.js';
import { readFileInRoot } from '../archive/rooted.js';

async function readTable(rootfs: string, file: string): Promise<string[][]> {
  try {
    // opened by the rooted walk: a running container swapping /etc for a link cannot make this read the host's
    const text = (await readFileInRoot(rootfs, file, 16 * 1024 * 1024)).toString('utf8');
    return text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
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

/** `spec` is `user[:group]`; `groupAdd` are `--group-add` entries (names looked up in the container's /etc/group, or numbers). */
export async function resolveUser(
  rootfs: string,
  spec: string,
  groupAdd: readonly string[] = [],
): Promise<ResolvedUser> {
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
    if (!row && !isNum(userPart)) throw internal(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = row ? Number(row[2]) : Number(userPart);
    gid = row ? Number(row[3]) : 0;
    name = row?.[0] ?? '';
    home = row?.[5] || '/';
  }
  if (groupPart !== undefined && groupPart !== '') {
    const row = group.find((r) => (isNum(groupPart) ? r[2] === groupPart : r[0] === groupPart));
    if (!row && !isNum(groupPart))
      throw internal(`unable to find group ${groupPart}: no matching entries in group file`);
    gid = row ? Number(row[2]) : Number(groupPart);
  }
  const additionalGids = name
    ? group
        .filter((r) => (r[3] ?? '').split(',').includes(name))
        .map((r) => Number(r[2]))
        .filter((g) => g !== gid)
    : [];
  for (const g of groupAdd) {
    const row = group.find((r) => (isNum(g) ? r[2] === g : r[0] === g));
    if (!row && !isNum(g)) throw internal(`Unable to find group ${g}: no matching entries in group file`);
    const id = row ? Number(row[2]) : Number(g);
    if (!additionalGids.includes(id)) additionalGids.push(id);
  }
  return { uid, gid, additionalGids, home };
}
