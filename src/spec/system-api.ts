/**
 * Request bodies of `/auth` and checkpoint create, decoded as dockerd's Go decoder does
 * (go-json.ts: keys in any case, null = unset, Go's type errors).
 */
import { invalidArgument } from '../base/errors.js';
import { decodeGo } from './go-json.js';
import { authConfig, checkpointCreateOptions } from './engine-schema.js';

export interface AuthRequest {
  username: string;
  password: string;
  serveraddress: string;
}

/** POST /auth: username and password (or `auth`, base64 of `user:pass`), and the registry. */
export function parseAuthConfig(v: unknown): AuthRequest {
  const a = decodeGo(authConfig, v ?? {}) as Partial<Record<string, string>>;
  let username = a['username'] ?? '';
  let password = a['password'] ?? '';
  if (!username && a['auth']) {
    const up = Buffer.from(a['auth'], 'base64').toString('utf8');
    const i = up.indexOf(':');
    if (i > 0) [username, password] = [up.slice(0, i), up.slice(i + 1)];
  }
  if (!username || !password) throw invalidArgument('username and password are required');
  return { username, password, serveraddress: a['serveraddress'] || 'https://index.docker.io/v1/' };
}

export interface CheckpointCreateBody {
  CheckpointID?: string;
  CheckpointDir?: string;
  Exit?: boolean;
  TcpEstablished?: boolean;
  PreDump?: boolean;
  ParentCheckpoint?: string;
  PageServer?: string;
}

/** POST /containers/{id}/checkpoints: types.CheckpointCreateOptions and berth's fields, any key case. */
export function parseCheckpointCreate(v: unknown): CheckpointCreateBody {
  return decodeGo(checkpointCreateOptions, v ?? {}) as CheckpointCreateBody;
}
