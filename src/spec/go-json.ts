/**
 * Decodes untyped JSON into the Engine API's request types the way dockerd's Go decoder
 * (encoding/json into api/types structs) does, so that a body berth accepts is a body dockerd
 * accepts, stored in the shape the docker CLI reads back:
 *
 * - object keys match a struct field exactly or else case-insensitively (Go's `bytes.EqualFold`);
 *   the stored key is the field's own name; keys of no field are dropped;
 * - `null` unsets a pointer, list or map field (it is dropped) and leaves any other field as it was
 *   (Go's no-op); a `null` element of a list or map is its zero value;
 * - every other JSON type must fit the field's Go type, integers their range: else InvalidArgument
 *   with Go's words, e.g. `json: cannot unmarshal string into Go struct field
 *   HostConfig.HostConfig.Memory of type int64`;
 * - `strslice.StrSlice` (Cmd, Entrypoint, Shell, CapAdd, CapDrop) takes a string or a list of strings.
 *
 * The walk follows the type, never the input: nesting in the input deeper than the type is refused
 * at the first level that does not fit, so no input can make it recurse further than the type does.
 * One difference: JSON numbers arrive as doubles, so integers beyond 2^53 are checked to within a
 * double's precision: ±2^63 (and 2^63 - 1, which reads as 2^63) are refused for int64, since what
 * is stored must print as a number the docker CLI's Go decoder reads back.
 */
import { invalidArgument } from '../base/errors.js';

export type GoType =
  | { kind: 'string'; name?: string }
  | { kind: 'bool' }
  | { kind: 'int'; name: string; min: number; max: number }
  | { kind: 'float'; name: string }
  | { kind: 'slice'; elem: GoType; name?: string }
  | { kind: 'array'; elem: GoType; len: number; name: string }
  | { kind: 'map'; elem: GoType; name?: string }
  | { kind: 'struct'; name: string; fields: Record<string, GoType>; zeros?: boolean }
  | { kind: 'ptr'; elem: GoType }
  | { kind: 'strslice' };

const TWO63 = 2 ** 63;
const int = (name: string, min: number, max: number): GoType => ({ kind: 'int', name, min, max });
/** The Go types the Engine API uses, by Go's name for them. */
export const go = {
  string: { kind: 'string' } as GoType,
  named: (name: string): GoType => ({ kind: 'string', name }),
  bool: { kind: 'bool' } as GoType,
  int64: int('int64', -TWO63, TWO63),
  /** `int` is 64 bits on the platforms dockerd runs on */
  int: int('int', -TWO63, TWO63),
  int32: int('int32', -(2 ** 31), 2 ** 31),
  uint16: int('uint16', 0, 2 ** 16),
  uint32: int('uint32', 0, 2 ** 32),
  uint: int('uint', 0, 2 ** 64),
  uint64: int('uint64', 0, 2 ** 64),
  duration: int('time.Duration', -TWO63, TWO63),
  fileMode: int('fs.FileMode', 0, 2 ** 32),
  float64: { kind: 'float', name: 'float64' } as GoType,
  strslice: { kind: 'strslice' } as GoType,
  slice: (elem: GoType, name?: string): GoType => (name ? { kind: 'slice', elem, name } : { kind: 'slice', elem }),
  array: (elem: GoType, len: number, name: string): GoType => ({ kind: 'array', elem, len, name }),
  map: (elem: GoType, name?: string): GoType => (name ? { kind: 'map', elem, name } : { kind: 'map', elem }),
  struct: (name: string, fields: Record<string, GoType>): GoType => ({ kind: 'struct', name, fields }),
  /** a small struct stored whole: every field, unset ones as their zero value (as Go would encode it) */
  record: (name: string, fields: Record<string, GoType>): GoType => ({ kind: 'struct', name, fields, zeros: true }),
  ptr: (elem: GoType): GoType => ({ kind: 'ptr', elem }),
};

/** Go's name of a type, as its decoder's errors print it. */
export function typeName(t: GoType): string {
  switch (t.kind) {
    case 'string':
      return t.name ?? 'string';
    case 'bool':
      return 'bool';
    case 'int':
    case 'float':
      return t.name;
    case 'slice':
      return t.name ?? `[]${typeName(t.elem)}`;
    case 'array':
      return t.name;
    case 'map':
      return t.name ?? `map[string]${typeName(t.elem)}`;
    case 'struct':
      return t.name;
    case 'ptr':
      return `*${typeName(t.elem)}`;
    case 'strslice':
      return 'strslice.StrSlice';
  }
}

/** The name an error reports for the value found: Go's `UnmarshalTypeError.Value`. */
function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'object';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  return 'string';
}

/** Go's key folding (bytes.EqualFold): ASCII case, plus the two non-ASCII letters that fold onto ASCII ones. */
function fold(s: string): string {
  return s
    .toLowerCase()
    .replace(/ſ/g, 's')
    .replace(/\u212a/g, 'k');
}

interface Where {
  /** the innermost Go struct being decoded (`UnmarshalTypeError.Struct`) */
  struct: string;
  /** the field names from the top (`UnmarshalTypeError.Field`) */
  fields: string[];
}

function mismatch(value: string, t: GoType, at: Where | null): never {
  const ty = typeName(t.kind === 'ptr' ? t.elem : t);
  if (!at || (!at.struct && at.fields.length === 0))
    throw invalidArgument(`json: cannot unmarshal ${value} into Go value of type ${ty}`);
  throw invalidArgument(
    `json: cannot unmarshal ${value} into Go struct field ${at.struct}.${at.fields.join('.')} of type ${ty}`,
  );
}

/** Go's zero value of `t` as stored (what a `null` list or map element becomes). */
export function zeroOf(t: GoType): unknown {
  switch (t.kind) {
    case 'string':
      return '';
    case 'bool':
      return false;
    case 'int':
    case 'float':
      return 0;
    case 'struct':
      return t.zeros ? Object.fromEntries(Object.entries(t.fields).map(([k, f]) => [k, zeroOf(f)])) : {};
    case 'ptr':
      return zeroOf(t.elem);
    case 'array':
      return Array.from({ length: t.len }, () => zeroOf(t.elem));
    default:
      return null;
  }
}

function decodeAt(t: GoType, v: unknown, at: Where | null): unknown {
  if (v === null || v === undefined) return zeroOf(t);
  switch (t.kind) {
    case 'ptr':
      return decodeAt(t.elem, v, at);
    case 'string':
      if (typeof v !== 'string') mismatch(jsonKind(v), t, at);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') mismatch(jsonKind(v), t, at);
      return v;
    case 'int':
      if (typeof v !== 'number') mismatch(jsonKind(v), t, at);
      // -2^63 is exact as a double but prints as -9223372036854776000, which no Go int64 reads back
      if (!Number.isInteger(v) || v < t.min || v >= t.max || v <= -TWO63) mismatch(`number ${String(v)}`, t, at);
      return v === 0 ? 0 : v; // no -0
    case 'float':
      if (typeof v !== 'number') mismatch(jsonKind(v), t, at);
      return v;
    case 'strslice':
      if (typeof v === 'string') return [v];
      // StrSlice's UnmarshalJSON retries a non-list as a string: its error names that type
      if (!Array.isArray(v) || v.some((x) => x !== null && typeof x !== 'string')) mismatch(jsonKind(v), go.string, at);
      return v.map((x) => (x === null ? '' : x));
    case 'slice':
    case 'array': {
      if (!Array.isArray(v)) mismatch(jsonKind(v), t, at);
      const out = v.map((x) => decodeAt(t.elem, x, at));
      if (t.kind === 'array') {
        // Go fills a fixed-size array from the list and drops the excess
        while (out.length < t.len) out.push(zeroOf(t.elem));
        out.length = t.len;
      }
      return out;
    }
    case 'map': {
      if (typeof v !== 'object' || Array.isArray(v)) mismatch(jsonKind(v), t, at);
      const out: Record<string, unknown> = {};
      // defined, not assigned: a `__proto__` key is a key here, as in Go, not the object's prototype
      for (const [k, x] of Object.entries(v as Record<string, unknown>))
        Object.defineProperty(out, k, {
          value: decodeAt(t.elem, x, at),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      return out;
    }
    case 'struct':
      return decodeStruct(t, v, at);
  }
}

const NILABLE = new Set<GoType['kind']>(['ptr', 'slice', 'map', 'strslice']);

function decodeStruct(t: Extract<GoType, { kind: 'struct' }>, v: unknown, at: Where | null): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) mismatch(jsonKind(v), t, at);
  const byFold = new Map<string, string>();
  for (const name of Object.keys(t.fields)) if (!byFold.has(fold(name))) byFold.set(fold(name), name);
  const out: Record<string, unknown> = t.zeros ? (zeroOf(t) as Record<string, unknown>) : {};
  for (const [key, x] of Object.entries(v as Record<string, unknown>)) {
    const name = Object.hasOwn(t.fields, key) ? key : byFold.get(fold(key));
    if (name === undefined) continue; // Go drops keys of no field
    const ft = t.fields[name]!;
    if (x === null || x === undefined) {
      // Go: null sets a pointer, slice or map to nil and leaves any other field as it was
      if (NILABLE.has(ft.kind)) {
        if (t.zeros) out[name] = zeroOf(ft);
        else delete out[name];
      }
      continue;
    }
    out[name] = decodeAt(ft, x, { struct: t.name.replace(/^.*\./, ''), fields: [...(at?.fields ?? []), name] });
  }
  return out;
}

/** Decodes `v` as Go would decode it into a value of type `t` (see the file's comment). */
export function decodeGo(t: GoType, v: unknown): unknown {
  return decodeAt(t, v, null);
}

/** Field lists of two struct types as one (Go's embedded structs: their fields are the outer one's). */
export function embed(...parts: Array<Record<string, GoType>>): Record<string, GoType> {
  return Object.assign({}, ...parts) as Record<string, GoType>;
}
