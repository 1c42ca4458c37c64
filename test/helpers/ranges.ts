import { expect } from 'vitest';

/**
 * Checks that `ranges` tile a span from `start` with no gap or overlap, each nonempty and aligned
 * to `align`; returns where the span ends.
 */
export function expectAlignedTiling(ranges: readonly { offset: number; length: number }[], start: number, align: number): number {
  let pos = start;
  for (const r of ranges) {
    expect(r.offset).toBe(pos);
    expect(r.length).toBeGreaterThan(0);
    expect(r.offset % align).toBe(0);
    expect(r.length % align).toBe(0);
    pos += r.length;
  }
  return pos;
}
