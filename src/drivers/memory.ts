/**
 * A sparse in-memory disk. Storage is a map of fixed-size chunks allocated on first write, so a
 * 1 TiB device costs nothing until written; discard and unmapping zeroes give chunks back.
 * Reads can be lent (leaseRead) as views of the chunks themselves: a chunk that is lent, or that
 * was adopted from an immutable write, is frozen — every change first swaps in a copy, so the
 * views a holder has never change (copy-on-write). Adopted and lent memory is held through
 * retainBuffer/releaseBuffer, so a pooled buffer is reused only after this driver lets it go.
 */
import { BlockDriver, type BlockDriverOptions } from '../driver.js';
import { copyInPieces } from '../buffers/copy.js';
import { releaseBuffer, retainBuffer } from '../buffers/ownership.js';
import { BlockError } from '../errors.js';
import { addUse, dropUse, newBufferUse, recordedIndexes, worthKeeping, type BufferUse } from './buffer-use.js';
import { chunkTable, type ChunkTable } from './chunk-table.js';
import type {
  BlockCapabilities,
  BlockExtent,
  BlockLimits,
  DiscardOptions,
  IoOptions,
  ReadLease,
  WriteOptions,
  WriteZeroesOptions,
} from '../types.js';

/**
 * Chunk views of memory kept by adopting writes, by ArrayBuffer. An adopted chunk is never written
 * in place, so every MemoryDriver adopting the same buffer — the replicas of one Quorum write —
 * and every later write from the same pooled buffer can share the view objects instead of each
 * allocating its own (48 per 1 MiB write to a three-way quorum).
 */
const viewCache = new WeakMap<ArrayBufferLike, { readonly byteOffset: number; readonly length: number; readonly cs: number; readonly views: Uint8Array[] }>();

/** Views of `data` cut into `cs`-byte chunks (`data.length` is a multiple of `cs`). */
function chunkViews(data: Uint8Array, cs: number): Uint8Array[] {
  const hit = viewCache.get(data.buffer);
  if (hit !== undefined && hit.byteOffset === data.byteOffset && hit.length === data.length && hit.cs === cs) return hit.views;
  const views = new Array<Uint8Array>(data.length / cs);
  // Plain Uint8Arrays even when `data` is a Buffer, whose slice() would not copy.
  for (let k = 0; k < views.length; k++) views[k] = new Uint8Array(data.buffer, data.byteOffset + k * cs, cs);
  viewCache.set(data.buffer, { byteOffset: data.byteOffset, length: data.length, cs, views });
  return views;
}

/** Options of {@link MemoryDriver}. */
export interface MemoryDriverOptions extends BlockDriverOptions {
  /**
   * Device size in bytes (any safe integer). No chunk is allocated up front; devices of up to
   * 65536 chunks (4 GiB at the default chunk size) keep a small index array of them (8 bytes a
   * chunk), larger ones a Map.
   */
  readonly size: number;
  /** Allocation unit, a power of two (default 64 KiB). */
  readonly chunkSize?: number;
  /** Refuse writes with EPERM. */
  readonly readOnly?: boolean;
}

const DEFAULT_CHUNK = 64 * 1024;
/** Above this many extents one blockStatus answer stops short; callers continue from its end. */
const MAX_EXTENTS = 4096;
/** Longest view of zeros lent for a never-written range (longer runs are lent as several views). */
const MAX_ZERO_VIEW = 1024 * 1024;
/**
 * A sparse in-memory disk, zero-filled at creation. Discard always frees whole chunks it covers
 * (so discarded ranges read as zeros); writeZeroes frees them only with `mayUnmap`. A write that
 * needs a chunk the process cannot allocate fails with ENOMEM and changes nothing.
 */
export class MemoryDriver extends BlockDriver {
  readonly #size: number;
  readonly #chunkSize: number;
  readonly #chunks: ChunkTable<Uint8Array>;
  /** Chunks lent by unreleased leases, with how many leases hold each (a chunk may be lent twice). */
  readonly #lent = new Map<Uint8Array, number>();
  /**
   * The chunks that are views of an immutable write's data (never changed in place), by index, each
   * with the record of the ArrayBuffer it views. By index, not by chunk: hashing a number is free,
   * while every new view would first need an identity hash. With the record: replacing a run of
   * adopted chunks compares records without asking each view for its buffer (a getter call per
   * chunk), and letting chunks go needs no lookup of their buffer's record.
   */
  readonly #adopted: ChunkTable<BufferUse>;
  /**
   * Per adopted buffer, what this driver uses of it (see buffer-use.ts). Weak, and a record is
   * kept when its count falls to zero: a pooled buffer comes back for the next write, and its
   * record then costs nothing to allocate.
   */
  #uses = new WeakMap<ArrayBufferLike, BufferUse>();
  /** Buffers now used too little, copied out at the end of the request that let their chunks go. */
  readonly #sparse: BufferUse[] = [];
  /** Lent for unallocated ranges; never written. */
  #zeros: Uint8Array | undefined;
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
    const count = Math.ceil(size / chunk);
    this.#chunks = chunkTable(count);
    this.#adopted = chunkTable(count);
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
      canAdoptWrites: true,
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
      else copyInPieces(target, chunk.subarray(within, within + n), pos);
      pos += n;
    }
    return Promise.resolve();
  }

  protected override _write(offset: number, data: Uint8Array, options: WriteOptions): Promise<void> {
    const cs = this.#chunkSize;
    let adopt = false;
    if (options.immutable === true) {
      const buffer = data.buffer;
      if (offset % cs === 0 && data.length % cs === 0) {
        if (worthKeeping(data.length / cs, cs, buffer)) return this.#adoptWhole(offset, data, buffer);
      } else adopt = this.#worthAdopting(offset, data.length, buffer);
    }
    // The common case — every chunk exists and none is frozen — needs no preparation (and no
    // per-request allocation on the hot path of small writes).
    if (adopt || !this.#writable(offset, data.length)) {
      const fresh = this.#prepare(offset, data.length, 'write', (i) => adopt && this.#covers(offset, data.length, i));
      if (fresh instanceof BlockError) return Promise.reject(fresh);
      for (const [i, chunk] of fresh) this.#install(i, chunk);
    }
    let pos = 0;
    while (pos < data.length) {
      const abs = offset + pos;
      const index = Math.floor(abs / cs);
      const within = abs - index * cs;
      const n = Math.min(cs - within, data.length - pos);
      if (adopt && n === cs) {
        // The caller promised never to change `data`: keep a view of it instead of a copy.
        // A plain Uint8Array even when `data` is a Buffer, whose slice() would not copy.
        const view = new Uint8Array(data.buffer, data.byteOffset + pos, n);
        retainBuffer(view);
        this.#install(index, view, true);
      } else {
        copyInPieces(this.#chunks.get(index) as Uint8Array, data.subarray(pos, pos + n), within);
      }
      pos += n;
    }
    this.#copySparse();
    return Promise.resolve();
  }

  /**
   * An immutable write of whole chunks: every chunk becomes a view of `data`, nothing is copied or
   * allocated but the views. Holds are taken and given back per buffer, not per chunk.
   */
  #adoptWhole(offset: number, data: Uint8Array, buffer: ArrayBufferLike): Promise<void> {
    const cs = this.#chunkSize;
    const count = data.length / cs;
    const first = offset / cs;
    retainBuffer(data, count);
    const views = chunkViews(data, cs);
    const chunks = this.#chunks;
    const adopted = this.#adopted;
    const use = this.#useOf(buffer);
    // Runs of replaced chunks from one buffer are let go with one call.
    let run: Uint8Array | undefined;
    let runUse: BufferUse | undefined;
    let runLength = 0;
    for (let k = 0; k < count; k++) {
      const index = first + k;
      const old = chunks.get(index);
      chunks.set(index, views[k]);
      // Only a chunk that was adopted holds memory of someone else's to let go of.
      const prior = adopted.get(index);
      adopted.set(index, use);
      if (prior === undefined) continue;
      if (prior === runUse) {
        runLength++;
        continue;
      }
      if (run !== undefined) this.#letGo(run, runUse!, runLength);
      run = old;
      runUse = prior;
      runLength = 1;
    }
    if (run !== undefined) this.#letGo(run, runUse!, runLength);
    addUse(use, first, count, this.#stillViews);
    this.#copySparse();
    return Promise.resolve();
  }

  protected override _leaseRead(offset: number, length: number, _options: IoOptions): Promise<ReadLease | undefined> {
    const cs = this.#chunkSize;
    const views: Uint8Array[] = [];
    const held: Uint8Array[] = [];
    let pos = 0;
    while (pos < length) {
      const abs = offset + pos;
      const index = Math.floor(abs / cs);
      const within = abs - index * cs;
      const n = Math.min(cs - within, length - pos);
      const chunk = this.#chunks.get(index);
      if (chunk === undefined) {
        // Capped so that a driver with huge chunks does not hold a huge zero buffer.
        const zeros = (this.#zeros ??= new Uint8Array(Math.min(cs, MAX_ZERO_VIEW)));
        for (let at = 0; at < n; at += zeros.length) views.push(zeros.subarray(0, Math.min(zeros.length, n - at)));
      } else {
        views.push(chunk.subarray(within, within + n));
        held.push(chunk);
      }
      pos += n;
    }
    // Only now that nothing can fail (the zero view above may not be allocatable) are the chunks
    // marked lent and held: the driver may drop an adopted chunk while it is lent.
    for (const chunk of held) {
      this.#lent.set(chunk, (this.#lent.get(chunk) ?? 0) + 1);
      retainBuffer(chunk);
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      for (const chunk of held) {
        const count = (this.#lent.get(chunk) ?? 1) - 1;
        if (count > 0) this.#lent.set(chunk, count);
        else this.#lent.delete(chunk);
        releaseBuffer(chunk);
      }
    };
    return Promise.resolve({ views, release });
  }

  protected override _discard(offset: number, length: number, _options: DiscardOptions): Promise<void> {
    return this.#zero(offset, length, true, 'discard');
  }

  protected override _writeZeroes(offset: number, length: number, options: WriteZeroesOptions): Promise<void> {
    return this.#zero(offset, length, options.mayUnmap === true, 'writeZeroes');
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
        ? this.#chunks.keysIn(first, last)
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
    for (const [i, chunk] of this.#chunks.entries()) if (this.#adopted.has(i)) releaseBuffer(chunk);
    this.#adopted.clear();
    this.#uses = new WeakMap();
    this.#sparse.length = 0;
    this.#chunks.clear();
    return Promise.resolve();
  }

  /** Puts `chunk` at `index`, letting go of the one it replaces. */
  #install(index: number, chunk: Uint8Array, adopted = false): void {
    const old = this.#chunks.get(index);
    this.#chunks.set(index, chunk);
    const oldUse = this.#adopted.get(index);
    if (adopted) {
      const use = this.#useOf(chunk.buffer);
      this.#adopted.set(index, use);
      addUse(use, index, 1, this.#stillViews);
    } else if (oldUse !== undefined) this.#adopted.delete(index);
    if (old !== undefined && oldUse !== undefined) this.#letGo(old, oldUse, 1);
  }

  #remove(index: number): void {
    const old = this.#chunks.get(index);
    if (old === undefined) return;
    this.#chunks.delete(index);
    const use = this.#adopted.get(index);
    if (use === undefined) return;
    this.#adopted.delete(index);
    // Ends this driver's hold on an adopted chunk (leases may still hold it).
    this.#letGo(old, use, 1);
  }

  /** An immutable write would keep enough of its buffer as whole chunks (see buffer-use.ts). */
  #worthAdopting(offset: number, length: number, buffer: ArrayBufferLike): boolean {
    const cs = this.#chunkSize;
    return worthKeeping(Math.floor((offset + length) / cs) - Math.ceil(offset / cs), cs, buffer);
  }

  /** This driver's record of `buffer`, made on first use. */
  #useOf(buffer: ArrayBufferLike): BufferUse {
    let use = this.#uses.get(buffer);
    if (use === undefined) this.#uses.set(buffer, (use = newBufferUse(buffer)));
    return use;
  }

  readonly #stillViews = (use: BufferUse, index: number): boolean => this.#adopted.get(index) === use;

  /** Ends the holds of `count` chunks that viewed the record's buffer (`chunk` is one of them). */
  #letGo(chunk: Uint8Array, use: BufferUse, count: number): void {
    releaseBuffer(chunk, count);
    if (dropUse(use, count, this.#chunkSize)) this.#sparse.push(use);
  }

  /**
   * Copies out the chunks of buffers this driver now uses too little of, so their memory can go.
   * Best effort: without memory for the copies, the views stay (still valid).
   */
  #copySparse(): void {
    const cs = this.#chunkSize;
    while (this.#sparse.length > 0) {
      const use = this.#sparse.pop()!;
      // Adopted again since it was queued: worth keeping after all.
      if (worthKeeping(use.live, cs, use.buffer)) {
        use.queued = false;
        continue;
      }
      for (const i of recordedIndexes(use)) {
        if (use.live === 0) break;
        if (!this.#stillViews(use, i)) continue;
        let copy: Uint8Array;
        try {
          copy = new Uint8Array(cs);
        } catch {
          use.queued = false;
          return;
        }
        copy.set(this.#chunks.get(i)!);
        this.#install(i, copy);
      }
      use.queued = false;
    }
  }

  /** Every chunk of the range exists and may be changed in place. */
  #writable(offset: number, length: number): boolean {
    const cs = this.#chunkSize;
    const last = Math.floor((offset + length - 1) / cs);
    for (let i = Math.floor(offset / cs); i <= last; i++) {
      const chunk = this.#chunks.get(i);
      if (chunk === undefined || this.#frozen(i, chunk)) return false;
    }
    return true;
  }

  /** Lent by a lease or adopted from an immutable write: must be copied before any change. */
  #frozen(index: number, chunk: Uint8Array): boolean {
    // Nothing lent is the usual state: skip hashing the chunk for the lookup then.
    return this.#adopted.has(index) || (this.#lent.size > 0 && this.#lent.has(chunk));
  }

  /** The range covers chunk `index` entirely. */
  #covers(offset: number, length: number, index: number): boolean {
    const cs = this.#chunkSize;
    return offset <= index * cs && offset + length >= (index + 1) * cs;
  }

  /**
   * Allocates, before anything is changed, every chunk a change of the range needs: for a write,
   * the chunks it lacks; for any change, a private copy of each frozen chunk it touches (a blank
   * one when the range covers it whole). Running out of memory thus fails with ENOMEM (not the EIO
   * a stray RangeError would become) and leaves the device exactly as it was. Chunks for which
   * `skip` is true need nothing (a write adopts them, an unmapping zero drops them). Returns the
   * chunks to install, or the error.
   */
  #prepare(offset: number, length: number, op: 'write' | 'writeZeroes' | 'discard', skip: (index: number) => boolean): Map<number, Uint8Array> | BlockError {
    const cs = this.#chunkSize;
    const fresh = new Map<number, Uint8Array>();
    const visit = (index: number): BlockError | undefined => {
      const chunk = this.#chunks.get(index);
      if (skip(index)) return undefined;
      if (chunk !== undefined && !this.#frozen(index, chunk)) return undefined;
      if (chunk === undefined && op !== 'write') return undefined;
      try {
        const copy = new Uint8Array(cs);
        if (chunk !== undefined && !this.#covers(offset, length, index)) copy.set(chunk);
        fresh.set(index, copy);
      } catch (err) {
        return new BlockError('ENOMEM', `${this.name}: cannot allocate a ${cs}-byte chunk for a ${op}`, {
          cause: err,
          details: { op, offset, length, driver: this.name, chunkSize: cs, allocatedBytes: this.allocatedBytes },
        });
      }
      return undefined;
    };
    for (const index of this.#indexes(offset, length, op === 'write')) {
      const failure = visit(index);
      if (failure !== undefined) return failure;
    }
    return fresh;
  }

  /**
   * Indexes of the chunks the range touches: all of them when `all` is set, else only allocated
   * ones — for a huge sparse range, found from the map's keys rather than by visiting every index.
   */
  #indexes(offset: number, length: number, all: boolean): Iterable<number> {
    const cs = this.#chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    if (!all && last - first + 1 > this.#chunks.size * 4) return this.#chunks.keysIn(first, last);
    const out: number[] = [];
    for (let i = first; i <= last; i++) out.push(i);
    return out;
  }

  /**
   * Zeros a range; whole chunks are freed when `unmap` is set, zero-filled otherwise. A frozen
   * chunk is replaced by a private copy first (see #prepare), so lent views keep their bytes.
   */
  #zero(offset: number, length: number, unmap: boolean, op: 'writeZeroes' | 'discard'): Promise<void> {
    const cs = this.#chunkSize;
    const end = offset + length;
    // The last chunk counts as covered up to the device end: bytes past it can never be read.
    const dropped = (i: number): boolean => unmap && offset <= i * cs && end >= Math.min((i + 1) * cs, this.#size);
    const fresh = this.#prepare(offset, length, op, dropped);
    if (fresh instanceof BlockError) return Promise.reject(fresh);
    for (const i of this.#indexes(offset, length, false)) {
      if (dropped(i)) {
        this.#remove(i);
        continue;
      }
      const replacement = fresh.get(i);
      if (replacement !== undefined) this.#install(i, replacement);
      const chunk = this.#chunks.get(i);
      if (chunk === undefined) continue;
      const from = Math.max(i * cs, offset) - i * cs;
      const to = Math.min((i + 1) * cs, end) - i * cs;
      // A blank replacement of a wholly covered chunk is already zero.
      if (!(replacement !== undefined && from === 0 && to === cs)) chunk.fill(0, from, to);
    }
    this.#copySparse();
    return Promise.resolve();
  }
}
