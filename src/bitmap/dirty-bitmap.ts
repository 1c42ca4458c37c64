/**
 * A dirty bitmap: one bit per granule of a device, set when any byte of the granule changed.
 * Mirror jobs, quorum resync and COLO use it to know which ranges still need copying.
 *
 * The API speaks bytes; the bitmap stores granules. Three rules connect them (docs/dirty-bitmap.md):
 * - `set` widens: every granule the range touches becomes dirty.
 * - `clear` shrinks: only granules the range covers completely become clean; the partial granule
 *   at the device end counts as covered when the range reaches the end. A clear therefore never
 *   forgets a change outside its range, which is the failure a copy job cannot afford.
 * - Queries answer about the dirty bytes: the union of dirty granules, clamped to `size`.
 */
import { brandedInstanceOf } from '../brand.js';
import { BlockError } from '../errors.js';
import {
  anySet,
  clearBits,
  nextClearBit,
  nextSetBit,
  orWords,
  popcountWords,
  setBits,
  wordsFor,
} from './bits.js';
import { MAX_GRANULARITY_LOG2, MIN_GRANULARITY_LOG2, decodeBitmap, encodeBitmap, leBytesToWords } from './format.js';

/** Options of {@link DirtyBitmap}. */
export interface DirtyBitmapOptions {
  /** Device size in bytes: a non-negative safe integer. */
  readonly size: number;
  /** Bytes tracked by one bit: a power of two from 512 B to 2 GiB (default 64 KiB). */
  readonly granularity?: number;
}

/** A run of dirty bytes. */
export interface DirtyExtent {
  readonly offset: number;
  readonly length: number;
}

/** The granularity used when none is given: 64 KiB, QEMU's default for mirror jobs. */
export const DEFAULT_BITMAP_GRANULARITY = 64 * 1024;

const ALL_ONES = 0xffffffff;

const BITMAP_BRAND = Symbol.for('blockgraph.DirtyBitmap');

/** Tracks which granules of a device are dirty. Synchronous and not thread-shared. */
export class DirtyBitmap {
  /** Device size in bytes. */
  readonly size: number;
  /** Bytes per bit. */
  readonly granularity: number;
  /** Number of bits: ceil(size / granularity). The last granule may be partial. */
  readonly granules: number;
  #words: Uint32Array;
  #count = 0;

  /** Brands bitmaps of every copy of this package loaded in the process (see `Symbol.hasInstance`). */
  get [BITMAP_BRAND](): true {
    return true;
  }

  /**
   * `instanceof DirtyBitmap` holds for a bitmap built on any copy of this package (the ESM and the
   * CommonJS build side by side, or two installs), so `merge` takes one from a CommonJS library.
   */
  static [Symbol.hasInstance](value: unknown): boolean {
    return brandedInstanceOf(this, DirtyBitmap, BITMAP_BRAND, value);
  }

  /**
   * @throws RangeError when `size` or `granularity` is out of range.
   * @throws BlockError ENOMEM when the bits cannot be allocated.
   */
  constructor(options: DirtyBitmapOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const { size } = options;
    const granularity = options.granularity ?? DEFAULT_BITMAP_GRANULARITY;
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`size must be a non-negative safe integer, got ${size}`);
    // Math.log2 rounds values one float step off a power of two to an integer: check both ways.
    const log2 = typeof granularity === 'number' ? Math.log2(granularity) : NaN;
    if (!Number.isInteger(log2) || 2 ** log2 !== granularity || log2 < MIN_GRANULARITY_LOG2 || log2 > MAX_GRANULARITY_LOG2) {
      throw new RangeError(`granularity must be a power of two from 512 B to 2 GiB, got ${granularity}`);
    }
    this.size = size;
    this.granularity = granularity;
    this.granules = Math.ceil(size / granularity);
    try {
      this.#words = new Uint32Array(wordsFor(this.granules));
    } catch (cause) {
      throw new BlockError('ENOMEM', `cannot allocate ${this.granules} bits for a dirty bitmap`, {
        cause,
        details: { op: 'allocate', length: this.granules },
      });
    }
  }

  /** Bytes of bit storage held: 4 × ceil(granules / 32), one bit per granule. */
  get byteLength(): number {
    return this.#words.byteLength;
  }
  /** Number of dirty granules. O(1): kept up to date by every change. */
  get count(): number {
    return this.#count;
  }
  /** Number of dirty bytes: dirty granules times granularity, the last granule clamped to `size`. */
  get dirtyBytes(): number {
    const bytes = this.#count * this.granularity;
    const tail = this.granules * this.granularity - this.size;
    return tail > 0 && this.#bit(this.granules - 1) ? bytes - tail : bytes;
  }
  /** True when nothing is dirty. */
  get isEmpty(): boolean {
    return this.#count === 0;
  }

  /** Marks dirty every granule that `[offset, offset + length)` touches. */
  set(offset: number, length: number): void {
    this.#checkRange('set', offset, length);
    if (length === 0) return;
    this.#count += setBits(this.#words, this.#floor(offset), this.#ceil(offset + length));
  }

  /**
   * Marks clean every granule that `[offset, offset + length)` covers completely (the partial last
   * granule is covered when the range ends at `size`). Granules only partly inside stay as they are.
   */
  clear(offset: number, length: number): void {
    this.#checkRange('clear', offset, length);
    const end = offset + length;
    const last = end === this.size ? this.granules : this.#floor(end);
    this.#count -= clearBits(this.#words, this.#ceil(offset), last);
  }

  /** True when any byte of `[offset, offset + length)` is dirty (`length` defaults to 1). */
  test(offset: number, length = 1): boolean {
    this.#checkRange('test', offset, length);
    if (length === 0) return false;
    return anySet(this.#words, this.#floor(offset), this.#ceil(offset + length));
  }

  /** True when the byte at `offset` (inside the device) is dirty. */
  isDirty(offset: number): boolean {
    this.#checkRange('isDirty', offset, 1);
    return this.#bit(this.#floor(offset));
  }

  /** The first dirty byte at or after `from`, or -1 when there is none before `size`. */
  nextDirty(from: number): number {
    this.#checkPosition('nextDirty', from);
    return this.#nextDirty(from);
  }

  /** The first clean byte at or after `from`, or -1 when every byte from there to `size` is dirty. */
  nextClean(from: number): number {
    this.#checkPosition('nextClean', from);
    return this.#nextClean(from, this.granules);
  }

  /**
   * The maximal runs of dirty bytes inside `[from, to)` (default: the whole device), in order.
   * Runs are computed lazily: a change made while iterating is seen by the steps still to come.
   */
  extents(from = 0, to = this.size): IterableIterator<DirtyExtent> {
    this.#checkPosition('extents', from);
    this.#checkPosition('extents', to);
    if (from > to || to > this.size) fail('extents', `range ${from}..${to} is not inside 0..${this.size}`, from, to - from);
    return this.#extents(from, to);
  }

  /**
   * The next dirty run for a copy loop with a wrapping cursor: the run starting at the first dirty
   * byte at or after `cursor`, else at the first dirty byte from 0; `undefined` when nothing is
   * dirty. The run is cut to at most `maxLength` bytes. When `cursor` and `maxLength` are multiples
   * of the granularity, the run ends on a granule boundary or at `size`, so `clear` of the run
   * cleans exactly it.
   */
  nextExtent(cursor: number, maxLength = Infinity): DirtyExtent | undefined {
    this.#checkPosition('nextExtent', cursor);
    if (typeof maxLength !== 'number') throw new TypeError(`maxLength must be a number, got ${typeof maxLength}`);
    if (maxLength !== Infinity && (!Number.isSafeInteger(maxLength) || maxLength <= 0)) {
      fail('nextExtent', `maxLength ${maxLength} is not a positive safe integer`, cursor, 0);
    }
    let start = this.#nextDirty(cursor);
    if (start === -1 && cursor > 0) start = this.#nextDirty(0);
    if (start === -1) return undefined;
    const stop = Math.min(this.size, start + maxLength);
    const clean = this.#nextClean(start, this.#ceil(stop));
    const end = clean === -1 ? stop : Math.min(clean, stop);
    return { offset: start, length: end - start };
  }

  /** ORs `other` into this bitmap. Both must have the same size and granularity (else EINVAL). */
  merge(other: DirtyBitmap): void {
    if (!(other instanceof DirtyBitmap)) throw new TypeError('merge expects a DirtyBitmap');
    if (other.size !== this.size || other.granularity !== this.granularity) {
      fail('merge', `cannot merge a bitmap of ${other.size} B / ${other.granularity} B granules into ${this.size} B / ${this.granularity} B granules`, 0, other.size);
    }
    if (other === this) return;
    if (#words in other) {
      this.#count += orWords(this.#words, other.#words);
      return;
    }
    // Another copy of this package: its private bits are not ours to read, its runs are (a run of
    // the same geometry covers whole granules, so `set` marks exactly those).
    for (const run of (other as DirtyBitmap).extents()) this.set(run.offset, run.length);
  }

  /** Marks the whole device clean. */
  clearAll(): void {
    this.#words.fill(0);
    this.#count = 0;
  }

  /** Marks the whole device dirty. */
  setAll(): void {
    this.#words.fill(ALL_ONES);
    const spare = this.#words.length * 32 - this.granules;
    // Bits past the last granule stay zero: scans and the serialized form rely on it.
    if (spare > 0) this.#words[this.#words.length - 1] = ALL_ONES >>> spare;
    this.#count = this.granules;
  }

  /** An independent copy. */
  clone(): DirtyBitmap {
    const copy = new DirtyBitmap({ size: this.size, granularity: this.granularity });
    copy.#words.set(this.#words);
    copy.#count = this.#count;
    return copy;
  }

  /** The bitmap in the version-1 format described in `./format.ts` and docs/dirty-bitmap.md. */
  serialize(): Uint8Array {
    return encodeBitmap(this.size, this.granularity, this.granules, this.#words);
  }

  /**
   * Rebuilds a bitmap from {@link DirtyBitmap.serialize} output.
   * @throws BlockError EINVAL when the bytes are short, damaged or of another format.
   */
  static deserialize(bytes: Uint8Array): DirtyBitmap {
    const image = decodeBitmap(bytes);
    const bitmap = new DirtyBitmap({ size: image.size, granularity: image.granularity });
    leBytesToWords(image.bits, bitmap.#words);
    bitmap.#count = popcountWords(bitmap.#words);
    return bitmap;
  }

  // ---- internals --------------------------------------------------------------------------

  *#extents(from: number, to: number): Generator<DirtyExtent, void, undefined> {
    let pos = from;
    while (pos < to) {
      const start = this.#nextDirty(pos);
      if (start === -1 || start >= to) return;
      const clean = this.#nextClean(start, this.#ceil(to));
      const end = clean === -1 ? to : Math.min(clean, to);
      yield { offset: start, length: end - start };
      pos = end;
    }
  }

  #nextDirty(from: number): number {
    if (from >= this.size) return -1;
    const bit = nextSetBit(this.#words, this.#floor(from), this.granules);
    return bit === -1 ? -1 : Math.max(from, bit * this.granularity);
  }

  /** First clean byte at or after `from` among granules below `limit`, or -1. */
  #nextClean(from: number, limit: number): number {
    if (from >= this.size) return -1;
    const bit = nextClearBit(this.#words, this.#floor(from), limit);
    return bit === -1 ? -1 : Math.max(from, bit * this.granularity);
  }

  #bit(granule: number): boolean {
    const w = Math.floor(granule / 32);
    return ((this.#words[w] >>> (granule - w * 32)) & 1) === 1;
  }

  // Granularity is a power of two, so these divisions are exact in floating point.
  #floor(offset: number): number {
    return Math.floor(offset / this.granularity);
  }
  #ceil(offset: number): number {
    return Math.ceil(offset / this.granularity);
  }

  #checkRange(op: string, offset: number, length: number): void {
    checkNumber(offset, 'offset');
    checkNumber(length, 'length');
    if (!Number.isSafeInteger(offset) || offset < 0) fail(op, `offset ${offset} is not a non-negative safe integer`, offset, length);
    if (!Number.isSafeInteger(length) || length < 0) fail(op, `length ${length} is not a non-negative safe integer`, offset, length);
    if (offset + length > this.size) fail(op, `range ${offset}+${length} ends past the size ${this.size}`, offset, length);
  }

  /** A search start: any non-negative safe integer (at or past `size` finds nothing). */
  #checkPosition(op: string, position: number): void {
    checkNumber(position, 'offset');
    if (!Number.isSafeInteger(position) || position < 0) fail(op, `offset ${position} is not a non-negative safe integer`, position, 0);
  }
}

function checkNumber(value: unknown, what: string): void {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, got ${typeof value}`);
}

function fail(op: string, why: string, offset: number, length: number): never {
  throw new BlockError('EINVAL', `dirty bitmap: ${op} ${why}`, { details: { op, offset, length } });
}
