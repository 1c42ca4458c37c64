/**
 * The operations a filter can see, shared by the filters that count, delay or fail them.
 */
import type { BlockCapabilities, BlockLimits } from '../types.js';

/** One kind of block request, as named by the BlockDriver methods. */
export type BlockOp = 'read' | 'write' | 'flush' | 'discard' | 'writeZeroes' | 'blockStatus' | 'cache';

/** Every {@link BlockOp}, in a fixed order. */
export const BLOCK_OPS: readonly BlockOp[] = Object.freeze([
  'read',
  'write',
  'flush',
  'discard',
  'writeZeroes',
  'blockStatus',
  'cache',
]);

/**
 * Capabilities for a filter that must see each write-zeroes and FUA request as one request.
 *
 * Without this, a child that cannot zero natively (or lacks native FUA) would make the filter's
 * own base class emulate the operation through the filter's `_write`/`_flush`, so a filter that
 * counts, delays or fails requests would see a stream of zero-buffer writes instead of one
 * write-zeroes. Claiming both is honest: the child's base class performs the same emulation when
 * the request reaches it, with the same durability. Everything else stays as the child says.
 */
export function wholeRequestCapabilities(child: BlockCapabilities): BlockCapabilities {
  if (!child.canWrite || (child.canZero && child.canFua)) return child;
  // Capabilities are read on every request: derive each child object's answer once.
  let caps = derived.get(child);
  if (caps === undefined) {
    caps = Object.freeze({ ...child, canZero: true, canFua: true });
    derived.set(child, caps);
  }
  return caps;
}

const derived = new WeakMap<BlockCapabilities, BlockCapabilities>();

/**
 * Limits for a filter that must see each read and write as one request: `maxTransfer` raised to
 * the child's `maxBlockSize`, so the filter's own base class does not cut a request into pieces
 * (which a filter would count, delay, throttle or fail one by one — a failure in the second piece
 * after the first was written). The child's base class cuts it at its own `maxTransfer` instead.
 */
export function wholeRequestLimits(child: BlockLimits): BlockLimits {
  if (child.maxTransfer >= child.maxBlockSize) return child;
  let limits = derivedLimits.get(child);
  if (limits === undefined) {
    limits = Object.freeze({ ...child, maxTransfer: child.maxBlockSize });
    derivedLimits.set(child, limits);
  }
  return limits;
}

const derivedLimits = new WeakMap<BlockLimits, BlockLimits>();
