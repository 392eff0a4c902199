/**
 * The BuildKit protocol messages berth encodes and decodes, from the .proto files in ./proto (kept
 * in the source tree; the compiled module reads them from there, see README.md). Only the methods'
 * serializers are used: berth is the gRPC client of the session services, and the Status message
 * is what `/build?version=2` streams.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';

const FILES = ['control.proto', 'session.proto', 'auth.proto', 'filesync.proto', 'sshforward.proto'];

function protoDir(): string {
  const here = import.meta.dirname;
  // dist/src/buildkit/ -> src/buildkit/proto (tsc does not copy .proto files)
  for (const d of [join(here, 'proto'), join(here, '../../../src/buildkit/proto')])
    if (existsSync(join(d, FILES[0]!))) return d;
  throw new Error(`BuildKit .proto files not found next to ${here}`);
}

type AnyMethod = MethodDefinition<object, object>;
let defs: Record<string, Record<string, AnyMethod>> | null = null;

function method(service: string, name: string): AnyMethod {
  defs ??= loadSync(FILES, {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    includeDirs: [protoDir()],
  }) as unknown as Record<string, Record<string, AnyMethod>>;
  const m = defs[service]?.[name];
  if (!m) throw new Error(`no method ${service}/${name} in BuildKit's protos`);
  return m;
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface Vertex {
  digest: string;
  inputs?: string[];
  name: string;
  cached?: boolean;
  started?: Timestamp;
  completed?: Timestamp;
  error?: string;
}

export interface VertexLog {
  vertex: string;
  timestamp: Timestamp;
  /** 1 stdout, 2 stderr */
  stream: number;
  msg: Buffer;
}

export interface StatusResponse {
  vertexes: Vertex[];
  logs: VertexLog[];
}

/** A gRPC method as this client calls it: its path and its message codecs. */
export interface Rpc<Req, Res> {
  path: string;
  encode(req: Req): Buffer;
  /** a request message of a streaming call */
  encodeRequest(req: Req): Buffer;
  decode(b: Buffer): Res;
}

function rpc<Req, Res>(service: string, name: string): Rpc<Req, Res> {
  return {
    path: `/${service}/${name}`,
    encode: (req) => method(service, name).requestSerialize(req as object),
    encodeRequest: (req) => method(service, name).requestSerialize(req as object),
    decode: (b) => method(service, name).responseDeserialize(b) as Res,
  };
}

/** fsutil/types Stat: `mode` is Go's os.FileMode (type bits high, permissions low). */
export interface FsStat {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  modTime: number;
  linkname: string;
}

/** fsutil/types Packet (its `type` as the enum's name, as proto-loader reads it). */
export interface Packet {
  type: 'PACKET_STAT' | 'PACKET_REQ' | 'PACKET_DATA' | 'PACKET_FIN' | 'PACKET_ERR';
  stat?: FsStat | null;
  ID?: number;
  data?: Buffer;
}

/**
 * moby.filesync.v1.FileSync/DiffCopy: declared on BytesMessage, but what goes over the stream in
 * both directions is fsutil's Packet (buildkit session/filesync: `fsutil.Receive` on the raw stream).
 */
export const DIFF_COPY = rpc<Packet, Packet>('moby.filesync.v1.FileSync', 'DiffCopy');

/**
 * moby.filesync.v1.FileSend/DiffCopy as the local exporter uses it: the daemon is fsutil's SENDER
 * (buildkit session/filesync CopyToCaller -> fsutil.Send), the client the receiver.
 */
export const FILE_SEND = rpc<Packet, Packet>('moby.filesync.v1.FileSend', 'DiffCopy');

export interface BytesMessage {
  data: Buffer;
}

/**
 * The same method as the tar exporter uses it (buildkit CopyFileWriter): the tar as BytesMessage
 * chunks, then a half-close; the client answers nothing and ends with its status.
 */
export const FILE_SEND_BYTES: Rpc<BytesMessage, BytesMessage> = {
  ...rpc<BytesMessage, BytesMessage>('moby.sshforward.v1.SSH', 'ForwardAgent'),
  path: FILE_SEND.path,
};

/** moby.sshforward.v1.SSH: is agent `ID` forwarded (an error status if not), and one agent connection. */
export const CHECK_AGENT = rpc<{ ID: string }, object>('moby.sshforward.v1.SSH', 'CheckAgent');
export const FORWARD_AGENT = rpc<BytesMessage, BytesMessage>('moby.sshforward.v1.SSH', 'ForwardAgent');

export const GET_SECRET = rpc<{ ID: string; annotations: Record<string, string> }, { data: Buffer }>(
  'moby.buildkit.secrets.v1.Secrets',
  'GetSecret',
);

export const CREDENTIALS = rpc<{ Host: string }, { Username: string; Secret: string }>(
  'moby.filesync.v1.Auth',
  'Credentials',
);

/** moby.buildkit.v1.StatusResponse on the wire (Control.Status's response). */
export function encodeStatus(s: StatusResponse): Buffer {
  return method('moby.buildkit.v1.Control', 'Status').responseSerialize(s);
}

export function decodeStatus(b: Buffer): StatusResponse {
  return method('moby.buildkit.v1.Control', 'Status').responseDeserialize(b) as StatusResponse;
}

/** A method of a service berth SERVES (moby.buildkit.v1.Control on `/grpc`): its codecs. */
export interface ServedMethod {
  path: string;
  responseStream: boolean;
  decodeRequest(b: Buffer): unknown;
  encodeResponse(res: object): Buffer;
}

/** The methods of `service` as proto-loader reads them, by name ('Solve', ...). */
export function servedMethods(service: string): Map<string, ServedMethod> {
  method(service, 'Status'); // loads the files
  const out = new Map<string, ServedMethod>();
  for (const [name, m] of Object.entries(defs![service] ?? {}))
    out.set(name, {
      path: m.path,
      responseStream: m.responseStream,
      decodeRequest: (b) => m.requestDeserialize(b),
      encodeResponse: (res) => m.responseSerialize(res),
    });
  return out;
}

export const timestamp = (ms: number): Timestamp => ({
  seconds: Math.floor(ms / 1000),
  nanos: Math.round((ms % 1000) * 1e6),
});
