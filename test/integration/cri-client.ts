/**
 * A CRI v1 gRPC client for tests, generated at run time from the same api.proto berthd serves
 * (src/cri/proto/api.proto): RuntimeService and ImageService as promise-returning calls, the
 * server stream GetContainerEvents as an event source.
 */
import { join } from 'node:path';
import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { REPO } from './harness.js';

export type Msg = Record<string, unknown>;

export interface CriClient {
  runtime(method: string, req?: Msg, deadlineMs?: number): Promise<Msg>;
  image(method: string, req?: Msg, deadlineMs?: number): Promise<Msg>;
  /** A server-streaming call (the Stream* RPCs) read to its end. */
  collect(service: 'runtime' | 'image', method: string, req?: Msg): Promise<Msg[]>;
  /** GetContainerEvents: each event to `on`; the result cancels the stream. */
  events(on: (ev: Msg) => void): () => void;
  close(): void;
}

export function criClient(socket: string): CriClient {
  const def = loadSync('api.proto', {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    arrays: true,
    includeDirs: [join(REPO, 'src/cri/proto')],
  });
  const v1 = ((loadPackageDefinition(def) as GrpcObject)['runtime'] as GrpcObject)['v1'] as GrpcObject;
  type Ctor = new (addr: string, creds: ReturnType<typeof credentials.createInsecure>, opts?: object) => Client;
  const opts = { 'grpc.max_receive_message_length': 64 << 20 };
  const rt = new (v1['RuntimeService'] as unknown as Ctor)(`unix:${socket}`, credentials.createInsecure(), opts);
  const im = new (v1['ImageService'] as unknown as Ctor)(`unix:${socket}`, credentials.createInsecure(), opts);
  const call = (c: Client, method: string, req: Msg, deadlineMs: number) =>
    new Promise<Msg>((resolve, reject) => {
      const fn = (c as unknown as Record<string, (...a: unknown[]) => void>)[method];
      if (!fn) return reject(new Error(`no method ${method}`));
      fn.call(c, req, { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res: Msg) =>
        err ? reject(err) : resolve(res),
      );
    });
  return {
    runtime: (m, req = {}, d = 120_000) => call(rt, m, req, d),
    image: (m, req = {}, d = 120_000) => call(im, m, req, d),
    collect: (service, method, req = {}) =>
      new Promise<Msg[]>((resolve, reject) => {
        const c = service === 'runtime' ? rt : im;
        const fn = (c as unknown as Record<string, (req: Msg) => NodeJS.EventEmitter>)[method];
        if (!fn) return reject(new Error(`no method ${method}`));
        const out: Msg[] = [];
        const stream = fn.call(c, req);
        stream.on('data', (m: Msg) => out.push(m));
        stream.on('error', reject);
        stream.on('end', () => resolve(out));
      }),
    events: (on) => {
      const fn = (rt as unknown as Record<string, (req: Msg) => NodeJS.EventEmitter & { cancel(): void }>)[
        'GetContainerEvents'
      ]!;
      const stream = fn.call(rt, {});
      stream.on('data', (m: Msg) => on(m));
      stream.on('error', () => undefined);
      return () => stream.cancel();
    },
    close: () => {
      rt.close();
      im.close();
    },
  };
}

/** The gRPC status code of a failed call (grpc-js's `code`), or -1. */
export const codeOf = (e: unknown): number => (e as { code?: number }).code ?? -1;
