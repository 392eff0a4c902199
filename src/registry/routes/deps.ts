/** What the resource handlers of routes/ share: the storage, the authorizer, the serve options they read. */
import type { Clock } from '../../base/clock.js';
import type { Authorizer } from '../auth.js';
import type { RegistryStorage } from '../storage.js';

/** The registry's part in trust: it may hold the timestamp role's key (see ../../trust/README.md). */
export interface TrustTimestamper {
  key(): { keyid: string; public: object };
  /** after a push of `_trust`: a fresh timestamp over the pushed snapshot, if the root names this key */
  refresh(repo: string, storage: RegistryStorage): Promise<void>;
  start(storage: RegistryStorage): void;
  stop(): void;
}

export interface RouteDeps {
  storage: RegistryStorage;
  auth: Authorizer;
  deleteEnabled: boolean;
  timestamper: TrustTimestamper | undefined;
  clock: Clock;
}
