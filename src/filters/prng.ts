/**
 * A small seeded pseudo-random generator for reproducible fault injection. Not for security.
 */

/**
 * Returns a function yielding numbers uniformly in [0, 1), fully determined by `seed` (any
 * integer; only its low 32 bits matter). Marsaglia's xorshift32, with the seed first spread by a
 * multiply-xorshift mix so that neighbouring seeds give unrelated sequences and seed 0 works.
 */
export function seededRandom(seed: number): () => number {
  let x = mix(seed >>> 0);
  if (x === 0) x = 0x6d2b79f5; // xorshift's one fixed point: an all-zero state stays zero.
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function mix(v: number): number {
  v = Math.imul(v ^ (v >>> 16), 0x7feb352d);
  v = Math.imul(v ^ (v >>> 15), 0x846ca68b);
  return (v ^ (v >>> 16)) >>> 0;
}
