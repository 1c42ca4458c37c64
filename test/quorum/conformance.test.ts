/**
 * The shared conformance suite, run over Quorum in several shapes: a quorum is a block device like
 * any other, whatever its pattern. Two shapes put jittery children under it (each request held a
 * seeded random 0–2 ms), so children complete overlapping requests in differing orders.
 */
import { blockDriverSuite } from '../conformance/index.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
import { Delay } from '../../src/filters/delay.js';
import { seededRandom } from '../../src/filters/prng.js';
import { Quorum } from '../../src/quorum/quorum.js';
import type { ReadPattern } from '../../src/quorum/vote.js';
import { Limited } from './harness.js';

function shape(n: number, threshold: number, readPattern: ReadPattern, rewriteCorrupted = false) {
  return ({ size }: { size: number }) =>
    new Quorum({
      children: Array.from({ length: n }, () => new MemoryDriver({ size })),
      threshold,
      readPattern,
      rewriteCorrupted,
    });
}

let seed = 1;
/** Children that hold every request back for 0, 1 or 2 ms, drawn from a seeded generator. */
function jittery(n: number, threshold: number, readPattern: ReadPattern) {
  return ({ size }: { size: number }) => {
    const children = Array.from({ length: n }, () => {
      const random = seededRandom(seed++);
      return new Delay(new MemoryDriver({ size }), { delays: () => Math.floor(random() * 3) });
    });
    return new Quorum({ children, threshold, readPattern });
  };
}

// A quorum sends discards as write-zeroes (docs/quorum.md), so over MemoryDrivers they read back as zeros.
const zeroes = { discardReadsZeroes: true } as const;
blockDriverSuite({ name: 'Quorum 1-of-1', factory: shape(1, 1, 'quorum'), ...zeroes });
blockDriverSuite({ name: 'Quorum 2-of-3 (vote, rewriteCorrupted)', factory: shape(3, 2, 'quorum', true), ...zeroes });
blockDriverSuite({ name: 'Quorum 1-of-2 fifo', factory: shape(2, 1, 'fifo'), ...zeroes });
blockDriverSuite({ name: 'Quorum 2-of-3 round-robin', factory: shape(3, 2, 'round-robin'), ...zeroes });
blockDriverSuite({ name: 'Quorum 1-of-3 least-pending', factory: shape(3, 1, 'least-pending'), ...zeroes });
blockDriverSuite({ name: 'Quorum 2-of-3 vote over jittery children (0–2 ms)', factory: jittery(3, 2, 'quorum'), numRuns: 15, ...zeroes });
blockDriverSuite({ name: 'Quorum 2-of-3 round-robin over jittery children (0–2 ms)', factory: jittery(3, 2, 'round-robin'), numRuns: 15, ...zeroes });
blockDriverSuite({
  name: 'Quorum blkverify',
  factory: ({ size }) => new Quorum({ children: [new MemoryDriver({ size }), new MemoryDriver({ size })], threshold: 2, blkverify: true }),
  ...zeroes,
});
blockDriverSuite({
  name: 'Quorum 2-of-2 over children with 512-byte blocks and mixed transfer limits',
  factory: ({ size }) =>
    new Quorum({
      children: [
        new Limited(new MemoryDriver({ size }), { minBlockSize: 512, preferredBlockSize: 4096, maxBlockSize: 1 << 20, maxTransfer: 65536 }),
        new Limited(new MemoryDriver({ size }), { minBlockSize: 1, preferredBlockSize: 512, maxBlockSize: 1 << 21, maxTransfer: 1 << 20 }),
      ],
      threshold: 2,
    }),
  ...zeroes,
});

// Limits that are each legal but do not line up: a byte-granular child whose maxima are not
// multiples of the other's 512-byte blocks (the quorum rounds them down to whole blocks).
blockDriverSuite({
  name: 'Quorum 2-of-2 over a 512-byte child and a byte-granular one with maxTransfer 40000',
  factory: ({ size }) =>
    new Quorum({
      children: [
        new Limited(new MemoryDriver({ size }), { minBlockSize: 512, preferredBlockSize: 4096, maxBlockSize: 1 << 20, maxTransfer: 65536 }),
        new Limited(new MemoryDriver({ size }), { minBlockSize: 1, preferredBlockSize: 4096, maxBlockSize: 1000000, maxTransfer: 40000 }),
      ],
      threshold: 2,
    }),
  numRuns: 15,
  ...zeroes,
});
