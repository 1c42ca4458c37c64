/**
 * A sparse in-memory disk. Storage is a map of fixed-size chunks allocated on first write, so a
 * 1 TiB device costs nothing until written; discard and unmapping zeroes give chunks back.
 */
import { BlockDriver, type BlockDriverOptions } from '../driver.js';
import { BlockError } from '../errors.js';
import type {
  BlockCapabilities,
  BlockExtent,
  BlockLimits,
  DiscardOptions,
  IoOptions,
  WriteOptions,
  WriteZeroesOptions,
} from '../types.js';

/** Options of {@link MemoryDriver}. */
export interface MemoryDriverOptions extends BlockDriverOptions {
  /** Device size in bytes (any safe integer; nothing is allocated up front). */
  readonly size: number;
  /** Allocation unit, a power of two (default 64 KiB). */
  readonly chunkSize?: number;
  /** Refuse writes with EPERM. */
  readonly readOnly?: boolean;
}

const DEFAULT_CHUNK = 64 * 1024;
/** Above this many extents one blockStatus answer stops short; callers continue from its end. */
const MAX_EXTENTS = 4096;

/**
 * A sparse in-memory disk, zero-filled at creation. Discard always frees whole chunks it covers
 * (so discarded ranges read as zeros); writeZeroes frees them only with `mayUnmap`. A write that
 * needs a chunk the process cannot allocate fails with ENOMEM and changes nothing.
 */
export class MemoryDriver extends BlockDriver {
  readonly #size: number;
  readonly #chunkSize: number;
  readonly #chunks = new Map<number, Uint8Array>();
  readonly #caps: BlockCapabilities;
  readonly #limits: BlockLimits;

  constructor(options: MemoryDriverOptions) {
    super({ name: options.name ?? 'memory' });
    const { size } = options;
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`size must be a non-negative safe integer, got ${size}`);
    const chunk = options.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isSafeInteger(chunk) || chunk < 512 || (chunk & (chunk - 1)) !== 0 || chunk > 2 ** 30) {
      throw new RangeError(`chunkSize must be a power of two from 512 B to 1 GiB, got ${chunk}`);
    }
    this.#size = size;
    this.#chunkSize = chunk;
    const writable = options.readOnly !== true;
    this.#caps = Object.freeze({
      canWrite: writable,
      canFlush: true,
      canFua: true,
      canDiscard: true,
      canZero: true,
      canFastZero: true,
      canBlockStatus: true,
      canMultiConn: true,
      canCache: false,
    });
    this.#limits = Object.freeze({ minBlockSize: 1, preferredBlockSize: 4096, maxBlockSize: 2 ** 31, maxTransfer: 2 ** 31 });
  }

  get size(): number {
    return this.#size;
  }
  get capabilities(): BlockCapabilities {
    return this.#caps;
  }
  override get limits(): BlockLimits {
    return this.#limits;
  }
  /** Bytes of chunk storage currently allocated. */
  get allocatedBytes(): number {
    return this.#chunks.size * this.#chunkSize;
  }

  protected _read(offset: number, target: Uint8Array, _options: IoOptions): Promise<void> {
    const cs = this.#chunkSize;
    let pos = 0;
    while (pos < target.length) {
      const abs = offset + pos;
      const index = Math.floor(abs / cs);
      const within = abs - index * cs;
      const n = Math.min(cs - within, target.length - pos);
      const chunk = this.#chunks.get(index);
      if (chunk === undefined) target.fill(0, pos, pos + n);
      else target.set(chunk.subarray(within, within + n), pos);
      pos += n;
    }
    return Promise.resolve();
  }

  protected override _write(offset: number, data: Uint8Array, _options: WriteOptions): Promise<void> {
    const cs = this.#chunkSize;
    const failure = this.#allocateRange(offset, data.length);
    if (failure !== undefined) return Promise.reject(failure);
    let pos = 0;
    while (pos < data.length) {
      const abs = offset + pos;
      const index = Math.floor(abs / cs);
      const within = abs - index * cs;
      const n = Math.min(cs - within, data.length - pos);
      (this.#chunks.get(index) as Uint8Array).set(data.subarray(pos, pos + n), within);
      pos += n;
    }
    return Promise.resolve();
  }

  protected override _discard(offset: number, length: number, _options: DiscardOptions): Promise<void> {
    this.#zero(offset, length, true);
    return Promise.resolve();
  }

  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    this.#zero(offset, length, options.mayUnmap === true);
    return Promise.resolve();
  }

  protected override _blockStatus(offset: number, length: number, _options: IoOptions): Promise<BlockExtent[]> {
    const cs = this.#chunkSize;
    const end = offset + length;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const extents: BlockExtent[] = [];
    const push = (from: number, to: number, allocated: boolean): void => {
      const prev = extents[extents.length - 1];
      if (prev !== undefined && prev.allocated === allocated) {
        extents[extents.length - 1] = { ...prev, length: to - prev.offset };
      } else {
        extents.push({ offset: from, length: to - from, allocated, zero: !allocated });
      }
    };
    // Walk the allocated chunks in order; for a huge sparse range, sort the keys instead of
    // visiting every chunk index.
    const span = last - first + 1;
    const indexes =
      span > this.#chunks.size * 4
        ? [...this.#chunks.keys()].filter((i) => i >= first && i <= last).sort((a, b) => a - b)
        : undefined;
    let pos = offset;
    if (indexes !== undefined) {
      for (const i of indexes) {
        const start = Math.max(i * cs, offset);
        if (start > pos) push(pos, start, false);
        const stop = Math.min((i + 1) * cs, end);
        push(start, stop, true);
        pos = stop;
        if (extents.length >= MAX_EXTENTS) return Promise.resolve(extents);
      }
      if (pos < end) push(pos, end, false);
      return Promise.resolve(extents);
    }
    for (let i = first; i <= last; i++) {
      const stop = Math.min((i + 1) * cs, end);
      push(pos, stop, this.#chunks.has(i));
      pos = stop;
      if (extents.length >= MAX_EXTENTS) break;
    }
    return Promise.resolve(extents);
  }

  protected override _close(): Promise<void> {
    this.#chunks.clear();
    return Promise.resolve();
  }

  /**
   * Allocates every chunk the range lacks before anything is copied, so that running out of
   * memory fails the write with ENOMEM (not the EIO a stray RangeError would become) and leaves
   * the device exactly as it was. Returns the error, or undefined when all chunks exist.
   */
  #allocateRange(offset: number, length: number): BlockError | undefined {
    const cs = this.#chunkSize;
    const last = Math.floor((offset + length - 1) / cs);
    const added: number[] = [];
    for (let index = Math.floor(offset / cs); index <= last; index++) {
      if (this.#chunks.has(index)) continue;
      let chunk: Uint8Array;
      try {
        chunk = new Uint8Array(cs);
      } catch (err) {
        for (const i of added) this.#chunks.delete(i);
        return new BlockError('ENOMEM', `${this.name}: cannot allocate a ${cs}-byte chunk for a write`, {
          cause: err,
          details: { op: 'write', offset, length, driver: this.name, chunkSize: cs, allocatedBytes: this.allocatedBytes },
        });
      }
      this.#chunks.set(index, chunk);
      added.push(index);
    }
    return undefined;
  }

  /** Zeros a range; whole chunks are freed when `unmap` is set, zero-filled otherwise. */
  #zero(offset: number, length: number, unmap: boolean): void {
    const cs = this.#chunkSize;
    const end = offset + length;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const visit = (i: number): void => {
      const chunk = this.#chunks.get(i);
      if (chunk === undefined) return;
      const from = Math.max(i * cs, offset) - i * cs;
      const to = Math.min((i + 1) * cs, end) - i * cs;
      if (unmap && from === 0 && to === cs) this.#chunks.delete(i);
      else chunk.fill(0, from, to);
    };
    if (last - first + 1 > this.#chunks.size * 4) {
      for (const i of [...this.#chunks.keys()]) if (i >= first && i <= last) visit(i);
    } else {
      for (let i = first; i <= last; i++) visit(i);
    }
  }
}
