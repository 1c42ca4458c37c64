/**
 * Reference models of a dirty bitmap, written for clarity rather than speed: they share no code
 * with src/bitmap and state each rule in terms of granule intervals clamped to the device size.
 *
 * - {@link ArrayModel}: one boolean per granule, for small devices.
 * - {@link SparseModel}: a set of dirty granule indices, for huge devices with a few small ranges.
 */
import type { DirtyExtent } from '../../src/bitmap/index.js';

/** Operations shared by both models; every query works on the dirty set of granule indices. */
export abstract class BitmapModel {
  constructor(readonly size: number, readonly granularity: number) {}

  get granules(): number {
    return Math.ceil(this.size / this.granularity);
  }
  /** Bytes of granule `g` inside the device: [start, end). */
  span(g: number): [number, number] {
    return [g * this.granularity, Math.min((g + 1) * this.granularity, this.size)];
  }
  /** The dirty granules in increasing order. */
  abstract dirtyGranules(): number[];
  abstract has(g: number): boolean;
  abstract mark(g: number, dirty: boolean): void;

  /** Granule indices whose span meets the byte range. Ranges are kept small by the generators. */
  protected touched(offset: number, length: number): number[] {
    const out: number[] = [];
    if (length === 0) return out;
    for (let g = Math.floor(offset / this.granularity); g < this.granules; g++) {
      const [s, e] = this.span(g);
      if (s >= offset + length) break;
      if (e > offset) out.push(g);
    }
    return out;
  }

  set(offset: number, length: number): void {
    for (const g of this.touched(offset, length)) this.mark(g, true);
  }
  clear(offset: number, length: number): void {
    for (const g of this.touched(offset, length)) {
      const [s, e] = this.span(g);
      if (s >= offset && e <= offset + length) this.mark(g, false);
    }
  }
  test(offset: number, length: number): boolean {
    return this.touched(offset, length).some((g) => this.has(g));
  }
  isDirty(offset: number): boolean {
    return this.has(Math.floor(offset / this.granularity));
  }
  get count(): number {
    return this.dirtyGranules().length;
  }
  get dirtyBytes(): number {
    let n = 0;
    for (const g of this.dirtyGranules()) {
      const [s, e] = this.span(g);
      n += e - s;
    }
    return n;
  }
  nextDirty(from: number): number {
    for (const g of this.dirtyGranules()) {
      const [s, e] = this.span(g);
      if (e > from) return Math.max(s, from);
    }
    return -1;
  }
  nextClean(from: number): number {
    let pos = from;
    while (pos < this.size) {
      const g = Math.floor(pos / this.granularity);
      if (!this.has(g)) return pos;
      pos = this.span(g)[1];
    }
    return -1;
  }
  /** Runs of dirty bytes inside [from, to), adjacent granules merged. */
  extents(from = 0, to = this.size): DirtyExtent[] {
    const runs: { offset: number; end: number }[] = [];
    for (const g of this.dirtyGranules()) {
      const [s, e] = this.span(g);
      const a = Math.max(s, from);
      const b = Math.min(e, to);
      if (a >= b) continue;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.end === a) last.end = b;
      else runs.push({ offset: a, end: b });
    }
    return runs.map((r) => ({ offset: r.offset, length: r.end - r.offset }));
  }
  nextExtent(cursor: number, maxLength = Infinity): DirtyExtent | undefined {
    const runs = this.extents();
    const after = runs.find((r) => r.offset + r.length > cursor);
    const run = after ?? runs[0];
    if (run === undefined) return undefined;
    const start = after === undefined ? run.offset : Math.max(run.offset, cursor);
    return { offset: start, length: Math.min(run.offset + run.length - start, maxLength) };
  }
  merge(other: BitmapModel): void {
    for (const g of other.dirtyGranules()) this.mark(g, true);
  }
}

/** One boolean per granule. */
export class ArrayModel extends BitmapModel {
  readonly bits: boolean[];
  constructor(size: number, granularity: number) {
    super(size, granularity);
    this.bits = new Array<boolean>(this.granules).fill(false);
  }
  dirtyGranules(): number[] {
    const out: number[] = [];
    this.bits.forEach((b, g) => b && out.push(g));
    return out;
  }
  has(g: number): boolean {
    return this.bits[g] === true;
  }
  mark(g: number, dirty: boolean): void {
    this.bits[g] = dirty;
  }
  setAll(): void {
    this.bits.fill(true);
  }
  clearAll(): void {
    this.bits.fill(false);
  }
}

/** A set of dirty granule indices. */
export class SparseModel extends BitmapModel {
  readonly dirty = new Set<number>();
  dirtyGranules(): number[] {
    return [...this.dirty].sort((a, b) => a - b);
  }
  has(g: number): boolean {
    return this.dirty.has(g);
  }
  mark(g: number, dirty: boolean): void {
    if (dirty) this.dirty.add(g);
    else this.dirty.delete(g);
  }
}
