/**
 * The CRI's runtime.v1 services, loaded from ./proto/api.proto (kept in the source tree: tsc does
 * not copy .proto files; the compiled module finds it from dist/ too). The server and the tests'
 * client load the same file, so both speak exactly these wire definitions.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadSync, type Options } from '@grpc/proto-loader';
import { loadPackageDefinition, type ServiceDefinition, type GrpcObject } from '@grpc/grpc-js';

export const PROTO_FILE = 'api.proto';

/** int64 as JS numbers (nanosecond times lose their last digits, never their meaning), enums by name. */
export const LOADER_OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: true, arrays: true };

export function protoDir(): string {
  const here = import.meta.dirname;
  // dist/src/cri/ -> src/cri/proto
  for (const d of [join(here, 'proto'), join(here, '../../../src/cri/proto')])
    if (existsSync(join(d, PROTO_FILE))) return d;
  throw new Error(`CRI api.proto not found next to ${here}`);
}

export interface CriServices {
  RuntimeService: ServiceDefinition;
  ImageService: ServiceDefinition;
}

export function loadCri(): CriServices {
  const def = loadSync(PROTO_FILE, { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
  const pkg = loadPackageDefinition(def) as GrpcObject;
  const v1 = (pkg['runtime'] as GrpcObject)['v1'] as GrpcObject;
  const svc = (name: string) => (v1[name] as unknown as { service: ServiceDefinition }).service;
  return { RuntimeService: svc('RuntimeService'), ImageService: svc('ImageService') };
}
