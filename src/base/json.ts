import { invalidArgument } from './errors.js';

/** Guards for parsing untyped JSON at the edge (spec/ builds on these). */
export type JsonObject = { [k: string]: unknown };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function asObject(v: unknown, what: string): JsonObject {
  if (!isObject(v)) throw invalidArgument(`${what}: expected an object`);
  return v;
}

export function optString(o: JsonObject, k: string, what: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidArgument(`${what}.${k}: expected a string`);
  return v;
}

export function optNumber(o: JsonObject, k: string, what: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidArgument(`${what}.${k}: expected a number`);
  return v;
}

export function optBool(o: JsonObject, k: string, what: string): boolean | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalidArgument(`${what}.${k}: expected a boolean`);
  return v;
}

export function optStringArray(o: JsonObject, k: string, what: string): string[] | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw invalidArgument(`${what}.${k}: expected an array of strings`);
  return v as string[];
}

export function optStringMap(o: JsonObject, k: string, what: string): Record<string, string> | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string'))
    throw invalidArgument(`${what}.${k}: expected a map of strings`);
  return v as Record<string, string>;
}
