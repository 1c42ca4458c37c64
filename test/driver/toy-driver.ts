/**
 * A deliberately constrained driver for testing the base class: 512-byte sectors, at most 4 KiB
 * per call, no native FUA or zeroing. It refuses (EIO, "contract violated") any call the base
 * class promised never to make, so running the conformance suite on it proves the splitting,
 * alignment, EOVERFLOW and emulation logic of BlockDriver.
 */
import { BlockDriver } from '../../src/driver.js';
import { BlockError } from '../../src/errors.js';
import type {
  BlockCapabilities,
  BlockExtent,
  BlockLimits,
  DiscardOptions,
  IoOptions,
  WriteOptions,
  WriteZeroesOptions,
} from '../../src/types.js';

export const SECTOR = 512;
export const TOY_MAX_TRANSFER = 4096;
export const TOY_MAX_BLOCK = 64 * 1024;

export interface ToyDriverOptions {
  readonly size: number;
  /** Report allocation per sector (default true); otherwise rely on the base class default. */
  readonly blockStatus?: boolean;
  /**
   * `discard` behaviour: 'keep' leaves the data (advisory no-op, the default), 'zero' deallocates
   * the sectors so they read as zeros.
   */
  readonly discard?: 'keep' | 'zero';
  /** Claim native zeroing but fail it with ENOTSUP, to exercise the base class fallback. */
  readonly zeroFailsNotSup?: boolean;
}

/** One call the base class made into the implementation. */
export interface ToyCall {
  readonly op: string;
  readonly offset: number;
  readonly length: number;
  readonly fua?: boolean;
}

export class ToyDriver extends BlockDriver {
  readonly #data: Uint8Array;
  readonly #allocated: Uint8Array;
  readonly #caps: BlockCapabilities;
  readonly #options: ToyDriverOptions;
  /** Every call into the implementation, in order (cleared by the tests that read it). */
  readonly calls: ToyCall[] = [];

  constructor(options: ToyDriverOptions) {
    super({ name: 'toy' });
    if (options.size % SECTOR !== 0) throw new RangeError(`size must be a multiple of ${SECTOR}`);
    this.#options = options;
    this.#data = new Uint8Array(options.size);
    this.#allocated = new Uint8Array(options.size / SECTOR);
    this.#caps = Object.freeze({
      canWrite: true,
      canFlush: true,
      canFua: false,
      canDiscard: true,
      canZero: options.zeroFailsNotSup === true,
      canFastZero: false,
      canBlockStatus: options.blockStatus !== false,
      canMultiConn: false,
      canCache: false,
    });
  }

  get size(): number {
    return this.#data.length;
  }
  get capabilities(): BlockCapabilities {
    return this.#caps;
  }
  override get limits(): BlockLimits {
    return { minBlockSize: SECTOR, preferredBlockSize: 4096, maxBlockSize: TOY_MAX_BLOCK, maxTransfer: TOY_MAX_TRANSFER };
  }

  protected _read(offset: number, target: Uint8Array, _options: IoOptions): Promise<void> {
    this.#accept('read', offset, target.length, TOY_MAX_TRANSFER);
    target.set(this.#data.subarray(offset, offset + target.length));
    return Promise.resolve();
  }

  protected override async _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    this.#accept('write', offset, data.length, TOY_MAX_TRANSFER, options.fua);
    // Yield once, so concurrent requests really interleave piece by piece.
    await Promise.resolve();
    this.#data.set(data, offset);
    this.#allocated.fill(1, offset / SECTOR, (offset + data.length) / SECTOR);
  }

  protected override _flush(_options: IoOptions): Promise<void> {
    this.calls.push({ op: 'flush', offset: 0, length: 0 });
    return Promise.resolve();
  }

  protected override _discard(offset: number, length: number, options: DiscardOptions): Promise<void> {
    this.#accept('discard', offset, length, Infinity, options.fua);
    if (this.#options.discard === 'zero') {
      this.#data.fill(0, offset, offset + length);
      this.#allocated.fill(0, offset / SECTOR, (offset + length) / SECTOR);
    }
    return Promise.resolve();
  }

  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    this.#accept('writeZeroes', offset, length, Infinity, options.fua);
    return Promise.reject(this.notSupported('writeZeroes'));
  }

  protected override _blockStatus(offset: number, length: number, _options: IoOptions): Promise<BlockExtent[]> {
    this.#accept('blockStatus', offset, length, Infinity);
    const extents: BlockExtent[] = [];
    for (let pos = offset; pos < offset + length && extents.length < 64; pos += SECTOR) {
      const allocated = this.#allocated[pos / SECTOR] === 1;
      // Deliberately one extent per sector, unmerged, and at most 64 per answer: the base class
      // must merge them and callers must cope with an answer that stops short.
      extents.push({ offset: pos, length: SECTOR, allocated, zero: !allocated });
    }
    return Promise.resolve(extents);
  }

  /** Records a call and refuses it unless it honours everything the base class promises. */
  #accept(op: string, offset: number, length: number, max: number, fua?: boolean): void {
    this.calls.push(fua === undefined ? { op, offset, length } : { op, offset, length, fua });
    const clean =
      // Requests accepted before close() may still run while closing, never after closed.
      this.state !== 'closed' &&
      Number.isSafeInteger(offset) &&
      Number.isSafeInteger(length) &&
      length > 0 &&
      offset % SECTOR === 0 &&
      length % SECTOR === 0 &&
      length <= max &&
      offset + length <= this.#data.length;
    if (!clean) {
      throw new BlockError('EIO', `toy: contract violated by the base class: ${op}(${offset}, ${length}) in state ${this.state}`);
    }
  }
}
