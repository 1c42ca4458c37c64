/** Byte-array assertions that stay fast on megabytes (vitest's deep equality walks element by element). */
import { expect } from 'vitest';
import { asBuffer } from '../../src/buffers/as-buffer.js';

/** Fails with the first differing offset unless `actual` and `expected` hold the same bytes. */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  const a = asBuffer(actual);
  const b = asBuffer(expected);
  if (a.length === b.length && a.equals(b)) return;
  let i = 0;
  while (i < Math.min(a.length, b.length) && a[i] === b[i]) i++;
  expect.fail(`${what}: lengths ${a.length}/${b.length}, first difference at ${i} (${a[i]} ≠ ${b[i]})`);
}

/** Deterministic non-zero-heavy bytes for `length` starting at `seed`. */
export function patternBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
