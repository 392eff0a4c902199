/**
 * A value made on first use, once: `const kit = lazy(async () => new (await import('./kit.js')).Kit())`,
 * then `await kit()`. berthd loads at start only what serving its socket needs; the builder, BuildKit,
 * the cluster store's client and the CRI load when first used (../cmd/README.md "Start-up").
 * Concurrent first uses share one load; a failed one is not kept, so the next use tries again.
 */
export function lazy<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () =>
    (p ??= make().catch((e: unknown) => {
      p = undefined;
      throw e;
    }));
}
