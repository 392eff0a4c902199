/**
 * A small CRI v1 client for the CLI's `berth pods` / `berth pod inspect`: unary calls on berthd's
 * CRI socket, with the runtime.v1 definitions read from the same api.proto berthd serves
 * (src/cri/proto: a file, not an import). Loaded only by those commands (grpc is not in the
 * bundled CLI).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export type CriMessage = Record<string, unknown>;

export const DEFAULT_CRI_SOCKET = '/run/berth/cri.sock';

function protoDir(): string {
  const here = import.meta.dirname;
  // dist/src/client/ -> src/cri/proto
  for (const d of [join(here, '../../../src/cri/proto'), join(here, '../cri/proto')])
    if (existsSync(join(d, 'api.proto'))) return d;
  throw new Error(`CRI api.proto not found from ${here}`);
}

export class CriClient {
  private readonly runtime: Client;

  constructor(socket: string) {
    const def = loadSync('api.proto', {
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      arrays: true,
      includeDirs: [protoDir()],
    });
    const v1 = ((loadPackageDefinition(def) as GrpcObject)['runtime'] as GrpcObject)['v1'] as GrpcObject;
    type Ctor = new (addr: string, creds: ReturnType<typeof credentials.createInsecure>) => Client;
    this.runtime = new (v1['RuntimeService'] as unknown as Ctor)(`unix:${socket}`, credentials.createInsecure());
  }

  /** One RuntimeService call, 30 s at most. */
  call(method: string, req: CriMessage = {}): Promise<CriMessage> {
    return new Promise((resolve, reject) => {
      const fn = (this.runtime as unknown as Record<string, (...a: unknown[]) => void>)[method];
      if (!fn) return reject(new Error(`no CRI method ${method}`));
      fn.call(this.runtime, req, { deadline: Date.now() + 30_000 }, (err: ServiceError | null, res: CriMessage) =>
        err ? reject(new Error(err.details || err.message)) : resolve(res),
      );
    });
  }

  close(): void {
    this.runtime.close();
  }
}
