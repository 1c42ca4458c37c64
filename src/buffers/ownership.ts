/**
 * Who still holds an immutable write's memory. A driver that adopts an immutable write keeps views
 * of the caller's buffer for as long as the data lives on the device; when that buffer came from a
 * pool, the pool may reuse it only once every such view is gone. Holds are counted per underlying
 * ArrayBuffer in a registry shared by every copy of this package loaded in the process (a global
 * symbol), so a buffer tracked by one copy is honoured by a driver from another.
 *
 * The rule for adopting drivers (`capabilities.canAdoptWrites`): call {@link retainBuffer} for each
 * view of an immutable write's data kept past the write's settlement, and {@link releaseBuffer}
 * exactly once for each when letting it go (overwritten, discarded, closed). Both are no-ops for
 * buffers nobody tracks, so a driver need not know where its data came from.
 */

interface Holds {
  count: number;
  readonly onFree: () => void;
}

const REGISTRY = Symbol.for('blockgraph.bufferHolds');
type Registry = WeakMap<ArrayBufferLike, Holds>;
const holds: Registry = ((globalThis as Record<symbol, unknown>)[REGISTRY] as Registry | undefined) ??
  ((globalThis as Record<symbol, unknown>)[REGISTRY] = new WeakMap<ArrayBufferLike, Holds>()) as Registry;

/**
 * Starts counting holds on `view`'s memory (its whole ArrayBuffer), counting the caller's own as
 * the first; `onFree` runs once the count falls to zero, inside that last `releaseBuffer` (an
 * exception from it becomes a process warning). Throws if the memory is already tracked. Each
 * holder must release exactly as often as it retained: a stray release after the memory was
 * freed and tracked again would take a hold from its next owner.
 */
export function trackBuffer(view: Uint8Array, onFree: () => void): void {
  if (holds.has(view.buffer)) throw new Error('trackBuffer: this memory is already tracked');
  holds.set(view.buffer, { count: 1, onFree });
}

/** Adds `count` holds (default 1) on `view`'s memory, if it is tracked. */
export function retainBuffer(view: Uint8Array, count = 1): void {
  const h = holds.get(view.buffer);
  if (h !== undefined) h.count += count;
}

/**
 * Ends `count` holds (default 1) on `view`'s memory, if it is tracked; the last one ends the
 * tracking and runs the owner's `onFree`, after which the memory may be rewritten at any moment.
 */
export function releaseBuffer(view: Uint8Array, count = 1): void {
  const h = holds.get(view.buffer);
  if (h === undefined) return;
  if (count > h.count) throw new Error('releaseBuffer: released more often than retained');
  h.count -= count;
  if (h.count > 0) return;
  holds.delete(view.buffer);
  try {
    h.onFree();
  } catch (err) {
    // The releaser is a driver in the middle of its own bookkeeping; an owner's failure must not
    // leave that half done.
    process.emitWarning(`blockgraph: a buffer owner's onFree threw: ${err instanceof Error ? err.message : String(err)}`, 'BlockgraphWarning');
  }
}

/** Holds on `view`'s memory (0 when it is not tracked). For tests and diagnostics. */
export function bufferHolds(view: Uint8Array): number {
  return holds.get(view.buffer)?.count ?? 0;
}
