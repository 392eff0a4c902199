/**
 * Registry credentials where and how the docker CLI keeps them (its cli/config/credentials):
 * $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
 * - `credHelpers[<registry host>]`, else `credsStore`, names a helper: `docker-credential-<name>`
 *   keeps the secret (`store` reads {"ServerURL","Username","Secret"}, `get` and `erase` read the
 *   server address; "credentials not found" on `get` means none). config.json then holds only an
 *   empty `auths.<server>` entry, as docker writes.
 * - without a helper, `auths.<server>.auth` = base64(user:password), with docker's warning that the
 *   password is stored unencrypted; the file is 0600 in a 0700 directory.
 * A config.json that is not a JSON object is an error (never read as empty, never overwritten).
 * Writes land by rename (a symlinked config.json is written at its target, as docker does).
 * Each helper runs with a deadline.
 */
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ExitError } from './context.js';

type Json = Record<string, unknown>;

export interface Credentials {
  username: string;
  password: string;
  /** an identity token a helper keeps (docker's `<token>` username) */
  identityToken?: string;
}

/** A helper is given this long to answer (it may ask a keyring, or a user for a passphrase). */
const HELPER_DEADLINE_MS = 60_000;
const HELPER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function configPath(): string {
  return join(process.env['DOCKER_CONFIG'] ?? join(homedir(), '.docker'), 'config.json');
}

/** config.json as an object; {} when there is none. Anything unreadable or not a JSON object is an error. */
export function readConfig(): Json {
  const p = configPath();
  let text: string;
  try {
    text = readFileSync(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ExitError(1, `cannot read ${p}: ${(e as Error).message}`);
  }
  if (text.trim() === '') return {}; // docker treats an empty file as no configuration
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ExitError(1, `${p} is not valid JSON (${(e as Error).message}): fix or remove it; it was left untouched`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ExitError(1, `${p} is not a JSON object: fix or remove it; it was left untouched`);
  const auths = (v as Json)['auths'];
  if (auths !== undefined && (typeof auths !== 'object' || auths === null || Array.isArray(auths)))
    throw new ExitError(1, `${p}: "auths" is not an object: fix or remove it; it was left untouched`);
  return v as Json;
}

/** Writes config.json: temp file 0600 in the same directory, fsync, rename. */
export function writeConfig(c: Json): void {
  let p = configPath();
  try {
    if (lstatSync(p).isSymbolicLink()) p = realpathSync(p);
  } catch {
    /* none yet */
  }
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(p), `.config.json.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(c, null, '\t')}\n`);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, p);
}

/** The registry's host, as docker keys credHelpers (its registry.ConvertToHostname). */
export function hostnameOf(server: string): string {
  const s = server.replace(/^https?:\/\//, '');
  return s.split('/')[0] ?? s;
}

/** The helper config.json names for `server` (credHelpers first, then credsStore), or null. */
function helperFor(c: Json, server: string): string | null {
  const helpers = c['credHelpers'];
  const own = helpers && typeof helpers === 'object' ? (helpers as Json)[hostnameOf(server)] : undefined;
  const name =
    typeof own === 'string' && own
      ? own
      : typeof c['credsStore'] === 'string' && c['credsStore']
        ? c['credsStore']
        : null;
  if (name !== null && !HELPER_NAME_RE.test(name))
    throw new ExitError(1, `${configPath()}: invalid credential helper name ${JSON.stringify(name)}`);
  return name;
}

class NotFoundInStore extends Error {}

/** Runs `docker-credential-<name> <verb>` with `input` on stdin; its stdout. */
function callHelper(name: string, verb: 'get' | 'store' | 'erase', input: string): string {
  const bin = `docker-credential-${name}`;
  try {
    return execFileSync(bin, [verb], {
      input,
      encoding: 'utf8',
      timeout: HELPER_DEADLINE_MS,
      killSignal: 'SIGKILL',
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 1 << 20,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string; signal?: string };
    if (err.code === 'ENOENT')
      throw new ExitError(
        1,
        `error ${verb === 'get' ? 'getting' : verb === 'store' ? 'storing' : 'erasing'} credentials: ${bin} not found in $PATH (credential helper set in ${configPath()})`,
      );
    const out = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
    if (/credentials not found/i.test(out)) throw new NotFoundInStore(out);
    if (err.signal)
      throw new ExitError(1, `error ${verb} credentials: ${bin} did not answer within ${HELPER_DEADLINE_MS / 1000} s`);
    throw new ExitError(
      1,
      `error ${verb === 'get' ? 'getting' : verb === 'store' ? 'storing' : 'erasing'} credentials - err: ${bin} ${verb}: ${out || err.message}`,
    );
  }
}

/** Stored credentials for `server`, if any (through its helper when config.json names one). */
export function loadCredentials(server: string): Credentials | null {
  const c = readConfig();
  const helper = helperFor(c, server);
  if (helper) {
    let out: string;
    try {
      out = callHelper(helper, 'get', server);
    } catch (e) {
      if (e instanceof NotFoundInStore) return null;
      throw e;
    }
    let v: unknown;
    try {
      v = JSON.parse(out);
    } catch {
      throw new ExitError(1, `docker-credential-${helper} get: not a JSON answer`);
    }
    const o = (typeof v === 'object' && v !== null ? v : {}) as Json;
    const username = typeof o['Username'] === 'string' ? o['Username'] : '';
    const secret = typeof o['Secret'] === 'string' ? o['Secret'] : '';
    if (!secret) return null;
    return username === '<token>'
      ? { username: '', password: '', identityToken: secret }
      : { username, password: secret };
  }
  const auths = (c['auths'] ?? {}) as Record<string, unknown>;
  const entry = (auths[server] ?? auths[server.replace(/^https?:\/\//, '')] ?? auths[`https://${server}`]) as
    Json | undefined;
  if (!entry || typeof entry !== 'object') return null;
  if (typeof entry['identitytoken'] === 'string' && entry['identitytoken'])
    return { username: '', password: '', identityToken: entry['identitytoken'] };
  if (typeof entry['auth'] !== 'string' || !entry['auth']) return null;
  const up = Buffer.from(entry['auth'], 'base64').toString('utf8');
  const i = up.indexOf(':');
  if (i < 0)
    throw new ExitError(1, `${configPath()}: the stored credentials for ${server} are not base64(user:password)`);
  return { username: up.slice(0, i), password: up.slice(i + 1) };
}

/**
 * Keeps credentials for `server`: in its helper (config.json keeps an empty entry, and loses any
 * plain one it had), else base64 in config.json with docker's warning on `warn`.
 */
export function saveCredentials(
  server: string,
  cred: { username: string; password: string },
  warn: (text: string) => void,
): void {
  const c = readConfig();
  const helper = helperFor(c, server);
  const auths = (c['auths'] ?? {}) as Record<string, Json>;
  if (helper) {
    callHelper(helper, 'store', JSON.stringify({ ServerURL: server, Username: cred.username, Secret: cred.password }));
    auths[server] = {};
  } else {
    auths[server] = { auth: Buffer.from(`${cred.username}:${cred.password}`).toString('base64') };
    warn(
      `WARNING! Your password will be stored unencrypted in ${configPath()}.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n\n`,
    );
  }
  c['auths'] = auths;
  writeConfig(c);
}

/** Forgets `server`'s credentials (helper and config.json). False when there were none. */
export function eraseCredentials(server: string): boolean {
  const c = readConfig();
  const helper = helperFor(c, server);
  const auths = (c['auths'] ?? {}) as Record<string, Json>;
  let had = server in auths;
  if (helper) {
    try {
      callHelper(helper, 'erase', server);
      had = true;
    } catch (e) {
      if (!(e instanceof NotFoundInStore)) throw e;
    }
  }
  if (server in auths) {
    delete auths[server];
    c['auths'] = auths;
    writeConfig(c);
  }
  return had;
}
