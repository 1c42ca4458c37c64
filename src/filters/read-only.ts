/**
 * ReadOnly: a view of the child that refuses every change.
 */
import { FilterDriver } from '../filter.js';
import type { BlockCapabilities } from '../types.js';

/**
 * Passes reads, flushes, block status and cache through, and reports `canWrite`, `canDiscard`,
 * `canZero` and `canFastZero` as false, so the base class fails writes, discards and
 * write-zeroes with EPERM before they could reach the child.
 */
export class ReadOnly extends FilterDriver {
  override get capabilities(): BlockCapabilities {
    const child = this.child.capabilities;
    let caps = readOnlyOf.get(child);
    if (caps === undefined) {
      caps = Object.freeze({ ...child, canWrite: false, canDiscard: false, canZero: false, canFastZero: false });
      readOnlyOf.set(child, caps);
    }
    return caps;
  }
}

const readOnlyOf = new WeakMap<BlockCapabilities, BlockCapabilities>();
