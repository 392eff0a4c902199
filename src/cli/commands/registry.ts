/**
 * pull, push, login, logout. Credentials live where the docker CLI keeps them (../credentials.ts:
 * config.json's credential helpers, else `auths.<host>.auth`), so either CLI can log in for the
 * other; they travel to the daemon in X-Registry-Auth.
 * Progress: one line per layer, redrawn in place on a terminal (docker's look), plain lines otherwise.
 */
import { createInterface } from 'node:readline';
import { readText } from '../../client/client.js';
import { UsageError, bool, parseArgs, splitTag, str } from '../args.js';
import { type Ctx } from '../context.js';
import { loadTrust, trustedReference, trustOn } from '../trust-loader.js';
import { eraseCredentials, readConfig, saveCredentials } from '../credentials.js';
import { authHeader, registryOf, render } from '../progress.js';

export async function pullCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    platform: { type: 'string' },
    quiet: { type: 'bool', short: 'q' },
    'all-tags': { type: 'bool', short: 'a' },
  });
  const ref = p.args[0];
  if (!ref) throw new UsageError('requires exactly 1 argument: NAME[:TAG|@DIGEST]');
  const at = ref.indexOf('@');
  const named = at >= 0 ? { name: ref.slice(0, at), tag: ref.slice(at + 1) } : splitTag(ref);
  if (bool(p, 'all-tags') && named.tag !== undefined) throw new UsageError("tag can't be used with --all-tags/-a");
  if (trustOn() && !bool(p, 'all-tags') && !str(p, 'platform')) {
    await trustedReference(ctx, ref, { pull: true });
    return;
  }
  const params = new URLSearchParams({
    fromImage: named.name,
    tag: bool(p, 'all-tags') ? '' : (named.tag ?? 'latest'),
  });
  if (str(p, 'platform')) params.set('platform', str(p, 'platform')!);
  const res = await ctx.client.stream('POST', `/images/create?${params}`, { headers: authHeader(registryOf(ref)) });
  await render(ctx, res, bool(p, 'quiet'));
  if (bool(p, 'quiet')) ctx.out(`${ref.includes(':') || at >= 0 ? ref : `${ref}:latest`}\n`);
}

export async function pushCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, { quiet: { type: 'bool', short: 'q' } });
  const ref = p.args[0];
  if (!ref) throw new UsageError('requires exactly 1 argument: NAME[:TAG]');
  if (trustOn()) return (await loadTrust()).sign(ctx, [ref]);
  const { name, tag = 'latest' } = splitTag(ref);
  const res = await ctx.client.stream('POST', `/images/${name}/push?tag=${encodeURIComponent(tag)}`, {
    headers: authHeader(registryOf(ref)),
  });
  await render(ctx, res, bool(p, 'quiet'));
}

/** Reads one line of stdin after a prompt (input is echoed: use --password-stdin to keep a password off the screen). */
async function ask(question: string): Promise<string> {
  process.stderr.write(question);
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return line;
  }
  return '';
}

export async function loginCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const p = parseArgs(argv, {
    username: { type: 'string', short: 'u' },
    password: { type: 'string', short: 'p' },
    'password-stdin': { type: 'bool' },
  });
  const server = p.args[0] ?? 'https://index.docker.io/v1/';
  const username = str(p, 'username') ?? (await ask('Username: '));
  let password = str(p, 'password');
  if (bool(p, 'password-stdin')) password = (await readText(process.stdin)).replace(/\r?\n$/, '');
  password ??= await ask('Password: ');
  if (!username || !password) throw new UsageError('username and password are required');
  readConfig(); // a config.json that cannot be kept is an error before anything is sent
  await ctx.client.json('POST', '/auth', { username, password, serveraddress: server });
  saveCredentials(server, { username, password }, (text) => ctx.err(text));
  ctx.out('Login Succeeded\n');
}

export async function logoutCmd(ctx: Ctx, argv: string[]): Promise<void> {
  const server = argv[0] ?? 'https://index.docker.io/v1/';
  if (!eraseCredentials(server)) {
    ctx.out(`Not logged in to ${server}\n`);
    return;
  }
  ctx.out(`Removing login credentials for ${server}\n`);
}
