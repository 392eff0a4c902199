/**
 * One-time tokens for streaming URLs, as kubelet's streaming request cache (cri/streaming
 * request_cache.go): random, used once, gone after a TTL, and at most `max` waiting at a time.
 */
import { randomBytes } from 'node:crypto';
import { unavailable } from '../../base/errors.js';
import type { Clock } from '../../base/clock.js';

export const TOKEN_TTL_MS = 60_000;
export const MAX_PENDING_TOKENS = 1000;

interface Entry<T> {
  value: T;
  expires: number;
}

export class TokenCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = TOKEN_TTL_MS,
    private readonly max = MAX_PENDING_TOKENS,
  ) {}

  /** A fresh token for `value`; Unavailable when `max` tokens are still waiting to be used. */
  insert(value: T): string {
    this.sweep();
    if (this.entries.size >= this.max) {
      throw unavailable(`streaming server: ${this.max} requests are waiting for a client already`);
    }
    // 16 random bytes: 128 bits no client can guess (kubelet uses 8).
    const token = randomBytes(16).toString('base64url');
    this.entries.set(token, { value, expires: this.clock.now() + this.ttlMs });
    return token;
  }

  /** The value of `token`, removing it; undefined when unknown, used or expired. */
  consume(token: string): T | undefined {
    const e = this.entries.get(token);
    if (!e) return undefined;
    this.entries.delete(token);
    return e.expires > this.clock.now() ? e.value : undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
  }
}
