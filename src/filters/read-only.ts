/**
 * ReadOnly: a view of the child that refuses every change.
 */
import { FilterDriver } from '../filter.js';
import type { BlockCapabilities, IoOptions, ReadLease } from '../types.js';

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
  /** Bytes pass through unchanged, so the child's views can be lent as they are. */
  protected override _leaseRead(offset: number, length: number, options: IoOptions): Promise<ReadLease | undefined> {
    return this.leaseFromChild(offset, length, options);
  }
}

const readOnlyOf = new WeakMap<BlockCapabilities, BlockCapabilities>();
