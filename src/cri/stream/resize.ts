/**
 * Terminal resize events from the resize stream: JSON objects `{"Width":W,"Height":H}` one after
 * another (client-go's json.Encoder), read the way kubelet's json.Decoder loop does: the first value
 * that is not a size ends the stream. A value may not grow past 4 KiB.
 */
import type { Readable } from 'node:stream';
import type { TermSize } from './backend.js';

const MAX_VALUE = 4096;

/** Splits concatenated JSON objects; returns the complete ones and the unfinished rest. */
export function splitJsonObjects(text: string): { values: string[]; rest: string } {
  const values: string[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}') {
      depth--;
      if (depth < 0) throw new Error('unbalanced JSON');
      if (depth === 0) {
        values.push(text.slice(start, i + 1));
        start = -1;
      }
    } else if (depth === 0 && !/\s/.test(c ?? '')) throw new Error(`unexpected ${JSON.stringify(c)} in resize stream`);
  }
  return { values, rest: depth > 0 ? text.slice(start) : '' };
}

function toSize(raw: string): TermSize {
  const v: unknown = JSON.parse(raw);
  if (typeof v !== 'object' || v === null) throw new Error('resize event is not an object');
  const o = v as Record<string, unknown>;
  const w = o['Width'];
  const h = o['Height'];
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff;
  if (!ok(w) || !ok(h)) throw new Error('resize event without a valid Width and Height');
  return { width: w, height: h };
}

/** The resize events of `stream`, in order; ends with the stream or at the first bad value. */
export async function* resizeEvents(stream: Readable): AsyncGenerator<TermSize> {
  let rest = '';
  try {
    for await (const chunk of stream) {
      rest += Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
      const r = splitJsonObjects(rest);
      rest = r.rest;
      if (rest.length > MAX_VALUE) return;
      for (const v of r.values) yield toSize(v);
    }
  } catch {
    return;
  }
}
