/**
 * COPY and ADD: sources from the context (keyed by their contents), from a stage or an image
 * (keyed by its key), heredocs, and for ADD URLs and local archives (extracted); the layer is
 * written directly (copy.ts), owners from the parent's /etc/passwd for --chown.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import { basename, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, invalidArgument } from '../base/errors.js';
import { resolveUser } from '../runtime/user.js';
import type { ImageRuntimeConfig } from '../spec/image.js';
import { stepKey } from './cache.js';
import { SourceRoot } from './context.js';
import { describeInputs, planCopy, type CopyInput, type Owner } from './copy.js';
import { expand, type Instruction } from './parser.js';
import { NOP, type State, type StepEnv } from './steps.js';

export async function copyInstruction(
  env: StepEnv,
  state: State,
  cfg: ImageRuntimeConfig,
  ins: Instruction,
  vars: Map<string, string>,
): Promise<State> {
  const isAdd = ins.name === 'ADD';
  const allowed = new Set(['from', 'chown', 'chmod', 'link', ...(isAdd ? ['checksum', 'keep-git-dir'] : ['parents'])]);
  for (const f of Object.keys(ins.flags)) if (!allowed.has(f)) throw invalidArgument(`unknown flag: --${f}`);
  const words = ins.json ? ins.args.map((a) => expand(a, vars, env.escape)) : ins.args.map((a) => env.word(a, vars));
  const destWord = words.pop()!;
  const dest = posix.isAbsolute(destWord)
    ? destWord
    : `${posix.resolve(cfg.WorkingDir || '/', destWord)}${destWord.endsWith('/') ? '/' : ''}`;
  const fromRef = ins.flags['from']?.[0];
  const chmodText = ins.flags['chmod']?.[0];
  if (chmodText !== undefined && !/^[0-7]{3,4}$/.test(chmodText))
    throw invalidArgument(`invalid chmod parameter: ${chmodText}`);
  const chmod = chmodText !== undefined ? parseInt(chmodText, 8) : null;
  const from = fromRef !== undefined ? await env.fromChain(env.word(fromRef, vars), env.currentStage(ins)) : null;
  const heredocs = new Map(ins.heredocs.map((h) => [h.name, h]));
  const cleanups: Array<() => Promise<void>> = [];
  const inputsFrom = async (root: SourceRoot): Promise<CopyInput[]> => {
    const inputs: CopyInput[] = [];
    for (const w of words) {
      const hd = /^<<-?["']?([A-Za-z_][A-Za-z0-9_]*)["']?$/.exec(w);
      const doc = hd ? heredocs.get(hd[1]!) : undefined;
      if (doc)
        inputs.push({
          kind: 'inline',
          name: doc.name,
          content: Buffer.from(doc.expand ? expand(doc.content, vars, env.escape) : doc.content),
        });
      else if (isAdd && /^https?:\/\//.test(w)) inputs.push(await download(env, w, cleanups));
      else for (const source of await root.resolve(w)) inputs.push({ kind: 'source', source });
    }
    return inputs;
  };
  /** The layer, on a miss: the parent's filesystem decides existing directories and --chown names. */
  const layer = (inputs: CopyInput[]) => () =>
    env.withView(state.chainId, async (view) => {
      const chownText = ins.flags['chown']?.[0];
      let owner: Owner | null = null;
      if (chownText) {
        const u = await resolveUser(view, chownText.includes(':') ? chownText : `${chownText}:${chownText}`).catch(
          async () => resolveUser(view, chownText),
        );
        owner = { uid: u.uid, gid: u.gid };
      }
      const epoch = env.epoch;
      return env.layerOf(
        await planCopy({ inputs, dest, view, chown: owner, chmod, extract: isAdd, epoch, now: env.now() }),
      );
    });
  const flags = JSON.stringify({ chown: ins.flags['chown'] ?? null, chmod });
  try {
    if (!from) {
      // context sources: the key has their contents
      const inputs = await inputsFrom(env.context);
      const { digest, summary } = await describeInputs(inputs);
      return await env.commit(
        state,
        [ins.name, flags, dest, digest],
        `${NOP}${ins.name} ${summary} in ${dest} `,
        cfg,
        layer(inputs),
      );
    }
    // a stage's or an image's files follow from its key: no need to read them for a hit
    const digest = stepKey(from.key, ...words);
    return await env.commit(
      state,
      [ins.name, flags, dest, digest],
      `${NOP}${ins.name} from:${digest.slice(7)} in ${dest} `,
      cfg,
      () => env.withView(from.chainId, async (dir) => layer(await inputsFrom(new SourceRoot(dir, null, false)))()),
    );
  } finally {
    for (const c of cleanups) await c();
  }
}

/** ADD <url>: fetched into scratch space; the name is the URL's last path element. */
async function download(env: StepEnv, url: string, cleanups: Array<() => Promise<void>>): Promise<CopyInput> {
  const res = await fetch(url, { signal: env.req.signal }).catch((e: unknown) => {
    throw invalidArgument(`ADD ${url}: ${errorMessage(e)}`);
  });
  if (!res.ok || !res.body) throw invalidArgument(`ADD ${url}: HTTP ${res.status}`);
  const file = join(env.d.scratch, `dl-${randomBytes(8).toString('hex')}`);
  cleanups.push(() => fsp.rm(file, { force: true }));
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(file));
  const lm = res.headers.get('last-modified');
  const name = basename(new URL(url).pathname) || 'index.html';
  return { kind: 'file', name, abs: file, mtime: lm ? new Date(lm) : new Date(0), mode: 0o600 };
}
