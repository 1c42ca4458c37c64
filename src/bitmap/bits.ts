/**
 * Word-at-a-time operations on a bit array held in a `Uint32Array`. Bit `i` lives in word
 * `floor(i / 32)`, at position `i % 32` (least significant first).
 *
 * Bit indices can pass 2^31 (a 1 TiB device at 512-byte granules has 2^31 of them), so they are
 * split with division, never with `>>`; shifts are used only inside one 32-bit word.
 */

const ALL_ONES = 0xffffffff;

/** Number of set bits in a 32-bit word (the SWAR popcount). */
export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Index of the lowest set bit of a non-zero word: isolate it with `x & -x`, then count leading zeros. */
export function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** A word with bits `lo` (inclusive) to `hi` (exclusive) set; requires `0 <= lo < hi <= 32`. */
export function wordMask(lo: number, hi: number): number {
  return ((ALL_ONES >>> (32 - (hi - lo))) << lo) >>> 0;
}

/** Words needed to hold `bits` bits. */
export function wordsFor(bits: number): number {
  return Math.ceil(bits / 32);
}

/** Set bits in the whole array. */
export function popcountWords(words: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w !== 0) n += popcount32(w);
  }
  return n;
}

/** Sets bits `[start, end)` and returns how many of them were clear before. */
export function setBits(words: Uint32Array, start: number, end: number): number {
  if (start >= end) return 0;
  const first = Math.floor(start / 32);
  const last = Math.floor((end - 1) / 32);
  let added = 0;
  for (let w = first; w <= last; w++) {
    const lo = w === first ? start - w * 32 : 0;
    const hi = w === last ? end - w * 32 : 32;
    const old = words[w];
    if (lo === 0 && hi === 32) {
      if (old !== ALL_ONES) {
        added += 32 - popcount32(old);
        words[w] = ALL_ONES;
      }
      continue;
    }
    const fresh = wordMask(lo, hi) & ~old;
    if (fresh !== 0) {
      added += popcount32(fresh);
      words[w] = old | fresh;
    }
  }
  return added;
}

/** Clears bits `[start, end)` and returns how many of them were set before. */
export function clearBits(words: Uint32Array, start: number, end: number): number {
  if (start >= end) return 0;
  const first = Math.floor(start / 32);
  const last = Math.floor((end - 1) / 32);
  let removed = 0;
  for (let w = first; w <= last; w++) {
    const old = words[w];
    if (old === 0) continue;
    const lo = w === first ? start - w * 32 : 0;
    const hi = w === last ? end - w * 32 : 32;
    const gone = lo === 0 && hi === 32 ? old : wordMask(lo, hi) & old;
    if (gone !== 0) {
      removed += popcount32(gone);
      words[w] = old & ~gone;
    }
  }
  return removed;
}

/**
 * First set bit in `[from, limit)`, or -1. Whole zero words are skipped with one comparison each;
 * inside a word the answer comes from {@link ctz32}.
 */
export function nextSetBit(words: Uint32Array, from: number, limit: number): number {
  if (from >= limit) return -1;
  let w = Math.floor(from / 32);
  let x = (words[w] & ~wordMaskBelow(from - w * 32)) >>> 0;
  const lastWord = Math.floor((limit - 1) / 32);
  while (x === 0) {
    if (++w > lastWord) return -1;
    x = words[w];
  }
  const bit = w * 32 + ctz32(x);
  return bit < limit ? bit : -1;
}

/** First clear bit in `[from, limit)`, or -1. The mirror image of {@link nextSetBit}. */
export function nextClearBit(words: Uint32Array, from: number, limit: number): number {
  if (from >= limit) return -1;
  let w = Math.floor(from / 32);
  let x = (~words[w] & ~wordMaskBelow(from - w * 32)) >>> 0;
  const lastWord = Math.floor((limit - 1) / 32);
  while (x === 0) {
    if (++w > lastWord) return -1;
    x = ~words[w] >>> 0;
  }
  const bit = w * 32 + ctz32(x);
  return bit < limit ? bit : -1;
}

/** True when any bit in `[start, end)` is set. */
export function anySet(words: Uint32Array, start: number, end: number): boolean {
  return nextSetBit(words, start, end) !== -1;
}

/** ORs `src` into `dst` (same length) and returns how many bits became set. */
export function orWords(dst: Uint32Array, src: Uint32Array): number {
  let added = 0;
  for (let i = 0; i < dst.length; i++) {
    const fresh = src[i] & ~dst[i];
    if (fresh !== 0) {
      added += popcount32(fresh);
      dst[i] |= fresh;
    }
  }
  return added;
}

/** A word with the `n` lowest bits set, `0 <= n < 32`. */
function wordMaskBelow(n: number): number {
  return n === 0 ? 0 : ALL_ONES >>> (32 - n);
}
