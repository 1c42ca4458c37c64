/**
 * The shared conformance suite, run over Quorum in several shapes: a quorum is a block device like
 * any other, whatever its pattern.
 */
import { blockDriverSuite } from '../conformance/index.js';
import { MemoryDriver } from '../../src/drivers/memory.js';
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

blockDriverSuite({ name: 'Quorum 1-of-1', factory: shape(1, 1, 'quorum') });
blockDriverSuite({ name: 'Quorum 2-of-3 (vote, rewriteCorrupted)', factory: shape(3, 2, 'quorum', true) });
blockDriverSuite({ name: 'Quorum 1-of-2 fifo', factory: shape(2, 1, 'fifo') });
blockDriverSuite({ name: 'Quorum 2-of-3 round-robin', factory: shape(3, 2, 'round-robin') });
blockDriverSuite({ name: 'Quorum 1-of-3 least-pending', factory: shape(3, 1, 'least-pending') });
blockDriverSuite({
  name: 'Quorum blkverify',
  factory: ({ size }) => new Quorum({ children: [new MemoryDriver({ size }), new MemoryDriver({ size })], threshold: 2, blkverify: true }),
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
});
