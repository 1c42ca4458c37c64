/**
 * Slice: exposes the window [offset, offset + length) of its child as a whole device, like a
 * partition. Requests are shifted by `offset`; the window is checked once, at construction, and
 * the child's own checks still apply to every shifted request.
 */
import { BlockDriver } from '../driver.js';
import { FilterDriver, type FilterOptions } from '../filter.js';
import type { BlockExtent, DiscardOptions, IoOptions, ReadLease, WriteOptions, WriteZeroesOptions } from '../types.js';

/** Options of {@link Slice}. */
export interface SliceOptions extends FilterOptions {
  /** Start of the window on the child, in bytes (a multiple of the child's minBlockSize). */
  readonly offset: number;
  /** Length of the window, in bytes (a multiple of the child's minBlockSize). */
  readonly length: number;
}

/** A window of the child device, addressed from 0. */
export class Slice extends FilterDriver {
  /** Where the window starts on the child. */
  readonly offset: number;
  readonly #length: number;

  constructor(child: BlockDriver, options: SliceOptions) {
    super(child, options);
    const { offset, length } = options;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`offset must be a non-negative safe integer, got ${offset}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative safe integer, got ${length}`);
    if (offset + length > child.size) {
      throw new RangeError(`window ${offset}+${length} ends past the end of ${child.name} (${child.size} bytes)`);
    }
    // An unaligned window would turn aligned requests into misaligned ones on the child.
    const align = child.limits.minBlockSize;
    if (offset % align !== 0 || length % align !== 0) {
      throw new RangeError(`window ${offset}+${length} is not aligned to ${child.name}'s block size ${align}`);
    }
    this.offset = offset;
    this.#length = length;
  }

  override get size(): number {
    return this.#length;
  }

  protected override _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return this.child.readInto(this.offset + offset, target, options);
  }
  /** Lends the child's views of the shifted range (Offset inherits this). */
  protected override _leaseRead(offset: number, length: number, options: IoOptions): Promise<ReadLease | undefined> {
    return this.leaseFromChild(this.offset + offset, length, options);
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.child.write(this.offset + offset, data, options);
  }
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    return this.child.discard(this.offset + offset, length, options);
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.child.writeZeroes(this.offset + offset, length, options);
  }
  protected override async _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    const extents = await this.child.blockStatus(this.offset + offset, length, options);
    return extents.map((e) => ({ offset: e.offset - this.offset, length: e.length, zero: e.zero, allocated: e.allocated }));
  }
  protected override _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    return this.child.cache(this.offset + offset, length, options);
  }
}

/** Length of the window from `offset` to the end of `child`, for {@link Offset}. */
export function tailLength(child: BlockDriver, offset: number): number {
  // Invalid input is reported by Slice's own checks; just keep this computation from throwing.
  return child instanceof BlockDriver && typeof offset === 'number' ? Math.max(0, child.size - offset) : 0;
}
