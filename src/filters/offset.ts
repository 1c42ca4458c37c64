/**
 * Offset: hides the first `offset` bytes of its child (e.g. a header in front of a raw image).
 */
import type { BlockDriver } from '../driver.js';
import type { FilterOptions } from '../filter.js';
import { Slice, tailLength } from './slice.js';

/** Options of {@link Offset}. */
export interface OffsetOptions extends FilterOptions {
  /** Bytes of the child to skip (a multiple of the child's minBlockSize, at most its size). */
  readonly offset: number;
}

/** The child from `offset` to its end, addressed from 0: a {@link Slice} running to the end. */
export class Offset extends Slice {
  constructor(child: BlockDriver, options: OffsetOptions) {
    super(child, { ...options, length: tailLength(child, options?.offset) });
  }
}
