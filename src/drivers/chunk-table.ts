/**
 * Where MemoryDriver keeps its chunks: by index, in a plain array while the device has few enough
 * chunks for a pointer array to be cheap, else in a Map. A 1 MiB write touches 16 chunks, and a
 * quorum write touches them once per replica; an array slot costs a few nanoseconds where a Map
 * entry costs tens, which is the difference between sharing a write and paying for it.
 */

/** The part of Map that MemoryDriver uses. */
export interface ChunkTable<V> {
  readonly size: number;
  get(index: number): V | undefined;
  set(index: number, value: V): unknown;
  has(index: number): boolean;
  /** True when there was an entry. */
  delete(index: number): boolean;
  /** Indexes with an entry from `first` to `last` (inclusive), ascending. */
  keysIn(first: number, last: number): number[];
  entries(): Iterable<[number, V]>;
  clear(): void;
}

/** Devices with at most this many chunks get an array (8 bytes a slot: 512 KiB at the limit). */
export const DENSE_LIMIT = 1 << 16;

/** A Map with the ranged key query. */
class SparseTable<V> extends Map<number, V> implements ChunkTable<V> {
  keysIn(first: number, last: number): number[] {
    const out: number[] = [];
    for (const i of this.keys()) if (i >= first && i <= last) out.push(i);
    return out.sort((a, b) => a - b);
  }
}

/** An array-backed table for `count` chunks. */
class DenseTable<V> implements ChunkTable<V> {
  readonly #slots: (V | undefined)[];
  #size = 0;

  constructor(count: number) {
    // Filled, so that the array stays a packed one V8 can index without holes checks.
    this.#slots = new Array<V | undefined>(count).fill(undefined);
  }
  get size(): number {
    return this.#size;
  }
  get(index: number): V | undefined {
    return this.#slots[index];
  }
  set(index: number, value: V): void {
    if (this.#slots[index] === undefined) this.#size++;
    this.#slots[index] = value;
  }
  has(index: number): boolean {
    return this.#slots[index] !== undefined;
  }
  delete(index: number): boolean {
    if (this.#slots[index] === undefined) return false;
    this.#slots[index] = undefined;
    this.#size--;
    return true;
  }
  keysIn(first: number, last: number): number[] {
    const out: number[] = [];
    const end = Math.min(last, this.#slots.length - 1);
    for (let i = Math.max(first, 0); i <= end; i++) if (this.#slots[i] !== undefined) out.push(i);
    return out;
  }
  *entries(): Iterable<[number, V]> {
    for (let i = 0; i < this.#slots.length; i++) {
      const v = this.#slots[i];
      if (v !== undefined) yield [i, v];
    }
  }
  clear(): void {
    this.#slots.fill(undefined);
    this.#size = 0;
  }
}

/** A Map for huge sparse devices; an array when `count` chunks fit {@link DENSE_LIMIT}. */
export function chunkTable<V>(count: number): ChunkTable<V> {
  return count <= DENSE_LIMIT ? new DenseTable<V>(count) : new SparseTable<V>();
}
