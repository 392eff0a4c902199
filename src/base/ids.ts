import { randomBytes } from 'node:crypto';

/** 64 hex characters, like Docker's container and exec ids. */
export type ContainerId = string & { readonly __brand: 'ContainerId' };
export type ExecId = string & { readonly __brand: 'ExecId' };

export function newId<T extends string>(): T {
  return randomBytes(32).toString('hex') as T;
}

export const shortId = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);
