import { blockDriverSuite } from '../conformance/index.js';
import { MemoryDriver } from '../../src/drivers/memory.js';

// Chunk sizes smaller than, equal to and larger than the boundaries the suite writes across.
for (const chunkSize of [512, 4096, 65536]) {
  blockDriverSuite({
    name: `MemoryDriver (chunkSize ${chunkSize})`,
    factory: ({ size }) => new MemoryDriver({ size, chunkSize }),
    discardReadsZeroes: true,
  });
}

blockDriverSuite({
  name: 'MemoryDriver (readOnly)',
  factory: ({ size }) => new MemoryDriver({ size, readOnly: true }),
});
