/**
 * A filter sits on one child and passes every call through unless it overrides it — nbdkit's
 * model. Because the child's public methods run their own checks, a filter can never hand its
 * child a bad request, and composition needs no trust between layers.
 */
import { BlockDriver, type BlockDriverOptions } from './driver.js';
import type {
  BlockCapabilities,
  BlockExtent,
  BlockLimits,
  DiscardOptions,
  IoOptions,
  ReadLease,
  WriteOptions,
  WriteZeroesOptions,
} from './types.js';

/** Options of {@link FilterDriver}. */
export interface FilterOptions extends BlockDriverOptions {
  /** Close the child when this filter closes (default true: the top of a graph owns it). */
  readonly closeChild?: boolean;
}

/** A pass-through filter; subclass it and override what the filter changes. */
export class FilterDriver extends BlockDriver {
  readonly child: BlockDriver;
  readonly #closeChild: boolean;

  constructor(child: BlockDriver, options: FilterOptions = {}) {
    super(options);
    if (!(child instanceof BlockDriver)) throw new TypeError('child must be a BlockDriver');
    this.child = child;
    this.#closeChild = options.closeChild ?? true;
  }

  get size(): number {
    return this.child.size;
  }
  get capabilities(): BlockCapabilities {
    return this.child.capabilities;
  }
  override get limits(): BlockLimits {
    return this.child.limits;
  }
  override get children(): readonly BlockDriver[] {
    return [this.child];
  }

  protected _read(offset: number, target: Uint8Array, options: IoOptions): Promise<void> {
    return this.child.readInto(offset, target, options);
  }
  /**
   * A filter may transform data, so by default it lends nothing (callers fall back to readInto);
   * filters that pass bytes through unchanged override this to lend their child's views.
   */
  protected override _leaseRead(_offset: number, _length: number, _options: IoOptions): Promise<ReadLease | undefined> {
    return Promise.resolve(undefined);
  }
  /** Lends the child's views of the same range, for filters that pass bytes through unchanged. */
  protected leaseFromChild(offset: number, length: number, options: IoOptions): Promise<ReadLease | undefined> {
    return this.child.leaseRead(offset, length, options);
  }
  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    return this.child.write(offset, data, options);
  }
  protected override _flush(options: IoOptions): Promise<void> {
    return this.child.flush(options);
  }
  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    return this.child.discard(offset, length, options);
  }
  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.child.writeZeroes(offset, length, options);
  }
  protected override _blockStatus(offset: number, length: number, options: IoOptions): Promise<BlockExtent[]> {
    return this.child.blockStatus(offset, length, options);
  }
  protected override _cache(offset: number, length: number, options: IoOptions): Promise<void> {
    return this.child.cache(offset, length, options);
  }
  protected override _close(): Promise<void> {
    return this.#closeChild ? this.child.close() : Promise.resolve();
  }
}
