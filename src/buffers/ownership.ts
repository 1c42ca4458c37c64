/**
 * Who still holds an immutable write's memory. A driver that adopts an immutable write keeps views
 * of the caller's buffer for as long as the data lives on the device; when that buffer came from a
 * pool, the pool may reuse it only once every such view is gone. Holds are counted per underlying
 * ArrayBuffer, in a record found through a global symbol, so a buffer tracked by one copy of this
 * package loaded in the process is honoured by a driver from another.
 *
 * The rule for adopting drivers (`capabilities.canAdoptWrites`): call {@link retainBuffer} for each
 * view of an immutable write's data kept past the write's settlement, and {@link releaseBuffer}
 * exactly once for each when letting it go (overwritten, discarded, closed). Both are no-ops for
 * buffers nobody tracks, so a driver need not know where its data came from.
 */

interface Holds {
  /** 0 while the memory is not tracked (the record stays on the buffer for its next tracking). */
  count: number;
  onFree: (() => void) | undefined;
}

/**
 * The record lives on the ArrayBuffer itself, under a global symbol: a property read is an inline
 * cache hit, where a WeakMap costs a hash lookup, and a pooled buffer is tracked, retained and
 * released several times per request. Memory that cannot take a property (a frozen or sealed
 * ArrayBuffer) falls back to a WeakMap; both are shared by every copy of this package in the process.
 */
const HOLDS = Symbol.for('blockgraph.bufferHolds');
const FALLBACK = Symbol.for('blockgraph.bufferHolds.nonExtensible');
type Fallback = WeakMap<ArrayBufferLike, Holds>;
const fallback: Fallback = ((globalThis as Record<symbol, unknown>)[FALLBACK] as Fallback | undefined) ??
  ((globalThis as Record<symbol, unknown>)[FALLBACK] = new WeakMap<ArrayBufferLike, Holds>()) as Fallback;

type Carrier = ArrayBufferLike & { readonly [HOLDS]?: Holds };

/** The record of `buffer`, tracked or not; undefined if it never was. */
function recordOf(buffer: ArrayBufferLike): Holds | undefined {
  const own = (buffer as Carrier)[HOLDS];
  if (own !== undefined || Object.isExtensible(buffer)) return own;
  return fallback.get(buffer);
}

/** The record of tracked memory, undefined when `buffer` is not tracked now. */
function holdsOf(buffer: ArrayBufferLike): Holds | undefined {
  const h = recordOf(buffer);
  return h !== undefined && h.count > 0 ? h : undefined;
}

/**
 * Starts counting holds on `view`'s memory (its whole ArrayBuffer), counting the caller's own as
 * the first; `onFree` runs once the count falls to zero, inside that last `releaseBuffer` (an
 * exception from it becomes a process warning). Throws if the memory is already tracked. Each
 * holder must release exactly as often as it retained: a stray release after the memory was
 * freed and tracked again would take a hold from its next owner.
 */
export function trackBuffer(view: Uint8Array, onFree: () => void): void {
  trackMemory(view, onFree);
}

/** The record of a tracked buffer, for {@link trackAgain}. Opaque outside this module. */
export type HoldsRecord = Holds;

/** {@link trackBuffer}, returning the record that {@link trackAgain} takes. */
export function trackMemory(view: Uint8Array, onFree: () => void): HoldsRecord {
  const buffer = view.buffer;
  let h = recordOf(buffer);
  if (h === undefined) {
    h = { count: 0, onFree: undefined };
    if (Object.isExtensible(buffer)) Object.defineProperty(buffer, HOLDS, { value: h });
    else fallback.set(buffer, h);
  }
  return trackAgain(h, onFree);
}

/**
 * Tracks again the memory behind `h` (from {@link trackMemory}) once it was freed, without looking
 * the record up: a pool re-tracks each buffer it hands out, and in a large pool the buffer's own
 * object is rarely in the cache.
 */
export function trackAgain(h: HoldsRecord, onFree: () => void): HoldsRecord {
  if (h.count > 0) throw new Error('trackBuffer: this memory is already tracked');
  h.count = 1;
  h.onFree = onFree;
  return h;
}

/** Adds `count` holds (default 1) on `view`'s memory, if it is tracked. */
export function retainBuffer(view: Uint8Array, count = 1): void {
  const h = holdsOf(view.buffer);
  if (h !== undefined) h.count += count;
}

/**
 * Ends `count` holds (default 1) on `view`'s memory, if it is tracked; the last one ends the
 * tracking and runs the owner's `onFree`, after which the memory may be rewritten at any moment.
 */
export function releaseBuffer(view: Uint8Array, count = 1): void {
  const h = holdsOf(view.buffer);
  if (h === undefined) return;
  if (count > h.count) throw new Error('releaseBuffer: released more often than retained');
  h.count -= count;
  if (h.count > 0) return;
  const onFree = h.onFree as () => void;
  h.onFree = undefined;
  try {
    onFree();
  } catch (err) {
    // The releaser is a driver in the middle of its own bookkeeping; an owner's failure must not
    // leave that half done.
    process.emitWarning(`blockgraph: a buffer owner's onFree threw: ${err instanceof Error ? err.message : String(err)}`, 'BlockgraphWarning');
  }
}

/** Holds on `view`'s memory (0 when it is not tracked). For tests and diagnostics. */
export function bufferHolds(view: Uint8Array): number {
  return holdsOf(view.buffer)?.count ?? 0;
}
